# syntax=docker/dockerfile:1
# One image for every component: `ticketing <component>` (command-service, projector,
# query-service, up, seed), the web bundle inside. Build: `docker build -t ticketing .`;
# run the whole system: `docker compose up` (compose.yaml).

# --- build: the binary and the web bundle, with the toolchain of Cargo.toml's rust-version ----
FROM rust:1.95-bookworm AS build
# wasm-opt comes from npm (scripts/build-web); wasm-bindgen-cli is built by the script itself.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends npm \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add wasm32-unknown-unknown
WORKDIR /src
COPY . .
# The registry and target directory are BuildKit caches: a rebuild compiles only what changed.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    --mount=type=cache,target=/root/.cache/ticketing \
    cargo build --release --locked --bin ticketing \
 && cp target/release/ticketing /usr/local/bin/ticketing \
 && WEB_DIST=/web scripts/build-web

# --- run: Debian slim, the binary, the bundle, no root ------------------------------------------
FROM debian:bookworm-slim
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/ticketing /usr/local/bin/ticketing
COPY --from=build /web /usr/share/ticketing/web
ENV WEB_DIR=/usr/share/ticketing/web \
    HTTP_ADDR=0.0.0.0:8080
USER 65534:65534
EXPOSE 8080 9090
# The image has no curl: `ticketing probe` asks the component's own /readyz (on HEALTH_ADDR when
# set, as for command-service and projector, else on HTTP_ADDR, the gateway's).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s CMD ["ticketing", "probe"]
ENTRYPOINT ["ticketing"]
CMD ["query-service"]

//! Serves the web app built by `scripts/build-web` from `WEB_DIR`.
//!
//! - `/assets/…` are named by content hash: served (gzip when the browser takes it) with
//!   `Cache-Control: public, max-age=31536000, immutable`.
//! - Every other `GET` that no API route takes is the app's `index.html` (the router in the
//!   browser picks the page), with `Cache-Control: no-cache` so a new build is seen at once, and a
//!   Content-Security-Policy that allows only this origin.

use std::path::{Path, PathBuf};

use axum::Router;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

/// What the page may load: its own origin only (WebAssembly needs `wasm-unsafe-eval`).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'self'";

/// The routes of the web app over `dir`, to be merged as the gateway's fallback.
pub fn routes<S: Clone + Send + Sync + 'static>(dir: PathBuf) -> Router<S> {
    let assets = ServeDir::new(dir.join("assets")).precompressed_gzip();
    let index = dir.join("index.html");
    Router::new()
        .nest_service(
            "/assets",
            tower::ServiceBuilder::new()
                .layer(SetResponseHeaderLayer::overriding(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=31536000, immutable"),
                ))
                .service(assets),
        )
        .fallback(move |method: Method| {
            let index = index.clone();
            async move { app_page(&method, &index).await }
        })
}

async fn app_page(method: &Method, index: &Path) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return StatusCode::NOT_FOUND.into_response();
    }
    match tokio::fs::read(index).await {
        Ok(page) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
                (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::REFERRER_POLICY, "same-origin"),
            ],
            page,
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "The web app is not built here: run scripts/build-web (ticketing up does it for you), or set WEB_DIR.\n\
             The API is at /graphql.\n",
        )
            .into_response(),
    }
}

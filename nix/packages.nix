# The binaries, the web bundle and the OCI image, built with crane: the workspace's dependencies
# are compiled once (`cargoArtifacts`) and reused by every binary; the web bundle's wasm
# dependencies likewise, with the toolchain's own wasm32 target (rust-overlay), so nothing here
# needs rustup or Debian's rustc.
{ pkgs, toolchain, crane }:
let
  inherit (pkgs) lib;
  craneLib = (crane.mkLib pkgs).overrideToolchain toolchain;
  src = lib.cleanSourceWith {
    src = ./..;
    filter = path: type:
      let base = baseNameOf path; in
      !(builtins.elem base [ "target" ".ticketing" "dist" "result" ]);
  };
  version = (builtins.fromTOML (builtins.readFile ../Cargo.toml)).workspace.package.version;

  # wasm-bindgen-cli must be exactly the version of the `wasm-bindgen` crate in Cargo.lock (the
  # generated glue and the library must agree): nixpkgs' attribute for that version, or a clear
  # evaluation error when nixpkgs has none.
  lockedPackages = (builtins.fromTOML (builtins.readFile ../Cargo.lock)).package;
  bindgenVersion = (lib.findFirst (p: p.name == "wasm-bindgen") (throw "wasm-bindgen is not in Cargo.lock") lockedPackages).version;
  bindgenAttr = "wasm-bindgen-cli_" + lib.replaceStrings [ "." ] [ "_" ] bindgenVersion;
  wasm-bindgen-cli = pkgs.${bindgenAttr} or (throw
    "nixpkgs has no ${bindgenAttr} (Cargo.lock pins wasm-bindgen ${bindgenVersion}): update nixpkgs or build it with pkgs.buildWasmBindgenCli");

  common = {
    inherit src version;
    pname = "ticketing";
    strictDeps = true;
    # Tests need NATS and PostgreSQL: they run in scripts/test.
    doCheck = false;
  };
  # The four binaries in one build, and their dependencies built once before it with the same
  # arguments (so that features unify the same way and nothing is compiled twice).
  names = [ "command-service" "projector" "query-service" "ticketing" ];
  nativeArgs = common // { cargoExtraArgs = "--locked --bins " + lib.concatMapStringsSep " " (n: "-p ${n}") names; };
  cargoArtifacts = craneLib.buildDepsOnly nativeArgs;
  all = craneLib.buildPackage (nativeArgs // {
    inherit cargoArtifacts;
    meta = {
      description = "Event-sourced ticketing platform";
      license = lib.licenses.asl20;
      mainProgram = "ticketing";
    };
  });

  # One package per binary, each the binary of that one build.
  binary = name: pkgs.runCommand name { meta = all.meta // { mainProgram = name; }; } ''
    mkdir -p $out/bin
    ln -s ${all}/bin/${name} $out/bin/${name}
  '';

  # The web app: its wasm dependencies built once, then scripts/build-web given the compiled
  # module (WEB_WASM) and the tools from nixpkgs, as everywhere else.
  webArgs = common // {
    pname = "ticketing-web";
    CARGO_BUILD_TARGET = "wasm32-unknown-unknown";
    CARGO_PROFILE = "web";
    cargoExtraArgs = "--locked -p web --lib";
  };
  web = craneLib.mkCargoDerivation (webArgs // {
    cargoArtifacts = craneLib.buildDepsOnly webArgs;
    nativeBuildInputs = [ wasm-bindgen-cli pkgs.binaryen pkgs.gzip ];
    buildPhaseCargoCommand = ''
      cargo build --locked -p web --lib --target wasm32-unknown-unknown --profile web
      tools=$TMPDIR/tools
      mkdir -p $tools/wasm-bindgen-${bindgenVersion}/bin $tools/binaryen-132/node_modules/.bin
      ln -s ${wasm-bindgen-cli}/bin/wasm-bindgen $tools/wasm-bindgen-${bindgenVersion}/bin/wasm-bindgen
      ln -s ${pkgs.binaryen}/bin/wasm-opt $tools/binaryen-132/node_modules/.bin/wasm-opt
      WEB_WASM=target/wasm32-unknown-unknown/web/web.wasm TICKETING_TOOLS=$tools WEB_DIST=$TMPDIR/dist \
        bash scripts/build-web
    '';
    installPhaseCommand = ''
      mkdir -p $out/share/ticketing
      cp -r $TMPDIR/dist $out/share/ticketing/web
    '';
  });

  bins = lib.genAttrs names binary;

  # One image for every component, as ./Dockerfile builds it: `ticketing <component>`.
  image = pkgs.dockerTools.buildLayeredImage {
    name = "ticketing/ticketing";
    tag = version;
    contents = [ all web pkgs.cacert ];
    config = {
      Entrypoint = [ "${all}/bin/ticketing" ];
      Cmd = [ "query-service" ];
      User = "65534:65534";
      Env = [
        "SSL_CERT_FILE=${pkgs.cacert}/etc/ssl/certs/ca-bundle.crt"
        "WEB_DIR=${web}/share/ticketing/web"
        "HTTP_ADDR=0.0.0.0:8080"
      ];
      ExposedPorts = { "8080/tcp" = { }; "9090/tcp" = { }; };
    };
  };
in
bins // {
  inherit web image cargoArtifacts;
  default = bins.ticketing;
}

# The binaries, the web bundle and OCI images.
{ pkgs, toolchain }:
let
  inherit (pkgs) lib;
  rustPlatform = pkgs.makeRustPlatform { cargo = toolchain; rustc = toolchain; };
  src = lib.cleanSourceWith {
    src = ./..;
    filter = path: type:
      let base = baseNameOf path; in
      !(builtins.elem base [ "target" ".ticketing" "dist" "result" ]);
  };
  version = (builtins.fromTOML (builtins.readFile ../Cargo.toml)).workspace.package.version;

  # One Rust package per binary; tests need NATS and PostgreSQL, so they run in `scripts/test`.
  binary = name: rustPlatform.buildRustPackage {
    pname = name;
    inherit version src;
    cargoLock.lockFile = ../Cargo.lock;
    cargoBuildFlags = [ "-p" name "--bin" name ];
    doCheck = false;
    meta = {
      description = "Event-sourced ticketing platform: ${name}";
      license = lib.licenses.asl20;
      mainProgram = name;
    };
  };

  # The web bundle, built by the same script as everywhere else. wasm-bindgen-cli must be the
  # version in Cargo.lock; override `wasm-bindgen-cli` when nixpkgs' differs.
  web = rustPlatform.buildRustPackage {
    pname = "ticketing-web";
    inherit version src;
    cargoLock.lockFile = ../Cargo.lock;
    nativeBuildInputs = [ pkgs.wasm-bindgen-cli pkgs.binaryen pkgs.gzip ];
    buildPhase = ''
      runHook preBuild
      tools=$TMPDIR/tools
      v=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
      mkdir -p $tools/wasm-bindgen-$v/bin $tools/binaryen-132/node_modules/.bin
      ln -s ${pkgs.wasm-bindgen-cli}/bin/wasm-bindgen $tools/wasm-bindgen-$v/bin/wasm-bindgen
      ln -s ${pkgs.binaryen}/bin/wasm-opt $tools/binaryen-132/node_modules/.bin/wasm-opt
      TICKETING_TOOLS=$tools WEB_DIST=$TMPDIR/dist bash scripts/build-web
      runHook postBuild
    '';
    installPhase = ''
      mkdir -p $out/share/ticketing
      cp -r $TMPDIR/dist $out/share/ticketing/web
    '';
    doCheck = false;
  };

  image = name: pkg: extra: pkgs.dockerTools.buildLayeredImage {
    name = "ticketing/${name}";
    tag = version;
    contents = [ pkg pkgs.cacert ] ++ extra;
    config = {
      Entrypoint = [ "${pkg}/bin/${name}" ];
      User = "65534:65534";
      Env = [ "SSL_CERT_FILE=${pkgs.cacert}/etc/ssl/certs/ca-bundle.crt" ] ++ lib.optional (name == "query-service")
        "WEB_DIR=${web}/share/ticketing/web";
      ExposedPorts = lib.optionalAttrs (name == "query-service") { "8080/tcp" = { }; };
    };
  };

  bins = lib.genAttrs [ "command-service" "projector" "query-service" "ticketing" ] binary;
in
bins // {
  inherit web;
  default = bins.ticketing;
  image-command-service = image "command-service" bins.command-service [ ];
  image-projector = image "projector" bins.projector [ ];
  image-query-service = image "query-service" bins.query-service [ web ];
}

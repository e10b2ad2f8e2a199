# The development shell: everything the README's two commands need.
{ pkgs, toolchain }:
pkgs.mkShell {
  packages = with pkgs; [
    toolchain
    cargo-nextest
    nats-server
    postgresql_15
    python3
    chromium
    chromedriver
    wasm-bindgen-cli
    binaryen
    nodejs
    kubeconform
  ];
  shellHook = ''
    export TICKETING_NATS_SERVER=${pkgs.nats-server}/bin/nats-server
    export CHROMIUM=${pkgs.chromium}/bin/chromium
    export CHROMEDRIVER=${pkgs.chromedriver}/bin/chromedriver
  '';
}

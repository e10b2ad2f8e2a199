# The Rust toolchain of rust-toolchain pins (1.95) with the wasm32 target for the web app.
{ pkgs }:
pkgs.rust-bin.stable."1.95.0".default.override {
  targets = [ "wasm32-unknown-unknown" ];
  extensions = [ "rust-src" "clippy" "rustfmt" ];
}

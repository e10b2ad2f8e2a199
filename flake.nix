{
  description = "Event-sourced ticketing platform on NATS JetStream and PostgreSQL";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    flake-utils.url = "github:numtide/flake-utils";
    rust-overlay = {
      url = "github:oxalica/rust-overlay";
      inputs.nixpkgs.follows = "nixpkgs";
    };
    # Builds the workspace's dependencies once, shared by every binary and the web bundle.
    crane.url = "github:ipetkov/crane";
  };

  outputs = { self, nixpkgs, flake-utils, rust-overlay, crane }:
    flake-utils.lib.eachDefaultSystem (system:
      let
        pkgs = import nixpkgs { inherit system; overlays = [ rust-overlay.overlays.default ]; };
        toolchain = import ./nix/toolchain.nix { inherit pkgs; };
        packages = import ./nix/packages.nix { inherit pkgs toolchain crane; };
      in
      {
        inherit packages;
        devShells.default = import ./nix/shell.nix { inherit pkgs toolchain; };
        # `nix flake check`: every binary and the web bundle build; formatting holds.
        checks = {
          inherit (packages) ticketing web;
          fmt = pkgs.runCommand "cargo-fmt-check" { nativeBuildInputs = [ toolchain ]; } ''
            cd ${./.} && cargo fmt --all -- --check && touch $out
          '';
        };
        formatter = pkgs.nixpkgs-fmt;
      });
}

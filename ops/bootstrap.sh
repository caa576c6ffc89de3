#!/usr/bin/env bash
# Installs what rakuda-realtime needs on a Debian machine that has Rust and Node.js: `just` and
# `cargo-nextest` (via cargo), `redis-server`, `redis-cli`, `nats-server`, `promtool`, `nginx`,
# `systemd-analyze` and `chromium` (via apt), and web/'s npm packages (npm ci). Safe to run again: it only installs
# what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

have() {
  command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/local/sbin/$1" ]
}

missing=()
have redis-server || missing+=(redis-server)
have redis-cli || missing+=(redis-tools)
have nats-server || missing+=(nats-server)
# promtool checks and unit-tests the alert rules in ops/prometheus.
have promtool || missing+=(prometheus)
# The browser tests drive Debian's Chromium (never a downloaded browser build).
have chromium || missing+=(chromium fonts-dejavu-core)
# The fleet test puts nginx in front of the gateways; check-ops runs `nginx -t`.
have nginx || missing+=(nginx)
# check-ops verifies the systemd units.
have systemd-analyze || missing+=(systemd)

if [ "${#missing[@]}" -gt 0 ]; then
  echo "bootstrap: installing ${missing[*]} with apt-get" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "bootstrap: installing cargo-nextest with cargo (takes a few minutes once)" >&2
  cargo install --locked --quiet cargo-nextest
fi

if ! command -v just >/dev/null 2>&1; then
  echo "bootstrap: installing just with cargo (takes a minute once)" >&2
  cargo install --locked --quiet just
  if ! command -v just >/dev/null 2>&1; then
    echo "bootstrap: just was installed to ${CARGO_HOME:-$HOME/.cargo}/bin, which is not on PATH; add it" >&2
    exit 1
  fi
fi

# The web package's dependencies, from the committed lockfile (again when it changed).
if ! command -v npm >/dev/null 2>&1; then
  echo "bootstrap: Node.js 20+ with npm is required for web/ (this machine has none)" >&2
  exit 1
fi
if [ ! -f web/node_modules/.package-lock.json ] || [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
  echo "bootstrap: installing web/ dependencies with npm ci" >&2
  (cd web && npm ci --no-audit --no-fund --loglevel=error)
fi

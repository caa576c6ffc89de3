#!/usr/bin/env bash
# Installs what rakuda-realtime needs on a Debian machine that has only Rust: `just` and
# `cargo-nextest` (via cargo), and `redis-server`, `redis-cli`, `nats-server`, `promtool` (via apt). Safe to run again: it only installs
# what is missing.
set -euo pipefail

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
  if ! cargo nextest --version >/dev/null 2>&1; then
  echo "bootstrap: installing cargo-nextest with cargo (takes a few minutes once)" >&2
  cargo install --locked --quiet cargo-nextest
fi

if ! command -v just >/dev/null 2>&1; then
    echo "bootstrap: just was installed to ${CARGO_HOME:-$HOME/.cargo}/bin, which is not on PATH; add it" >&2
    exit 1
  fi
fi

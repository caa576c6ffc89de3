#!/usr/bin/env bash
# `just bench`: builds the release binaries and runs the standard scenarios (rakuda-loadgen
# bench), writing the table into docs/BENCHMARKS.md. With two or more cores the gateway is
# pinned to core 0 and everything else (load generator, Redis, NATS, bridge) to the last core,
# so the gateway's figures are its own.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-3}"
shift || true

cargo build --release -q -p rakuda-bridge -p rakuda-gateway -p rakuda-loadgen
cores=$(nproc)
if [ "$cores" -ge 2 ] && command -v taskset >/dev/null 2>&1; then
  last=$((cores - 1))
  exec taskset -c "$last" target/release/rakuda-loadgen bench --runs "$runs" --gateway-cpus 0 "$@"
else
  echo "bench: fewer than 2 cores (or no taskset): nothing is pinned, figures are not comparable" >&2
  exec target/release/rakuda-loadgen bench --runs "$runs" --gateway-cpus "" "$@"
fi

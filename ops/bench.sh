#!/usr/bin/env bash
# `just bench`: builds the release binaries and runs the standard scenarios, then the fleet
# scenarios (fleet-56k, storm-kill, rolling-deploy, reset-herd: 4 gateways, 56,000 clients in
# worker processes), with rakuda-loadgen bench, writing the tables into docs/BENCHMARKS.md.
# With two or more cores the gateway (every gateway of a fleet) is pinned to core 0 and
# everything else (load generator and its workers, Redis, NATS, bridge) to the last core, so
# the gateways' figures are their own. Extra arguments go to `bench`: `--only storm-kill`.
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

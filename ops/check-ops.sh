#!/usr/bin/env bash
# Checks every ops file with the tool that runs it: promtool (Prometheus config, alert rules and
# their unit tests), nginx -t, nats-server -t (single node and cluster), systemd-analyze verify.
# Run by `just check-ops`, part of `just test`. The Grafana dashboard's queries and the metric
# names in every file are checked by gateway/tests/ops_files.rs against running processes.
set -euo pipefail
cd "$(dirname "$0")/.."

tool() {
  command -v "$1" 2>/dev/null || { [ -x "/usr/sbin/$1" ] && echo "/usr/sbin/$1"; } || {
    echo "check-ops: $1 is missing: run ./ops/bootstrap.sh" >&2
    exit 1
  }
}

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

echo "check-ops: prometheus config and alert rules" >&2
promtool=$(tool promtool)
"$promtool" check config --lint=all ops/prometheus/prometheus.yml
(cd ops/prometheus && "$promtool" test rules alerts.test.yml)

echo "check-ops: nginx" >&2
mkdir -p "$scratch/nginx"
"$(tool nginx)" -t -q -p "$scratch/nginx" -c "$PWD/ops/nginx/nginx.conf" -e "$scratch/nginx/error.log"

echo "check-ops: nats-server configs" >&2
nats_server=$(tool nats-server)
"$nats_server" -t -c ops/nats/single.conf
env NATS_SERVER_NAME=nats-1 NATS_HOST=127.0.0.1 NATS_PORT=4222 NATS_HTTP_PORT=8222 \
  NATS_CLUSTER_PORT=6222 NATS_ROUTE_A=nats-route://127.0.0.1:6223 \
  NATS_ROUTE_B=nats-route://127.0.0.1:6224 NATS_STORE_DIR="$scratch/nats" \
  "$nats_server" -t -c ops/nats/cluster.conf

echo "check-ops: systemd units" >&2
# verify also insists that ExecStart exists on this machine, which is not what is being
# checked: point it at `true`. It reports problems as warnings with exit 0, so any output fails.
true_bin=$(command -v true)
for unit in ops/systemd/*.service; do
  name=$(basename "$unit")
  sed -e "s#^ExecStart=[^ ]*#ExecStart=$true_bin#" "$unit" > "$scratch/$name"
done
report=$(cd "$scratch" && "$(tool systemd-analyze)" verify ./*.service 2>&1 || true)
if [ -n "$report" ]; then
  echo "$report" >&2
  echo "check-ops: systemd-analyze verify found problems in ops/systemd" >&2
  exit 1
fi
echo "check-ops: all ops files pass their tools" >&2

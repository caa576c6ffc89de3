#!/usr/bin/env bash
# Checks every ops file with the tool that runs it: promtool (Prometheus config, alert rules and
# their unit tests), nginx -t, nats-server -t (single node and cluster), redis-server (loads
# ops/redis/redis.conf), systemd-analyze verify.
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

echo "check-ops: redis.conf" >&2
# Loaded into a real redis-server on a free port, which refuses an unknown or malformed line;
# then the value the bridge relies on is read back.
redis_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$(tool redis-server)" "$PWD/ops/redis/redis.conf" --port "$redis_port" --bind 127.0.0.1 \
  --save "" --appendonly no --dir "$scratch" --daemonize yes --logfile "$scratch/redis.log" \
  --pidfile "$scratch/redis.pid"
for _ in $(seq 1 50); do
  "$(tool redis-cli)" -p "$redis_port" ping >/dev/null 2>&1 && break
  sleep 0.1
done
limits=$("$(tool redis-cli)" -p "$redis_port" config get client-output-buffer-limit | tail -1)
"$(tool redis-cli)" -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
case "$limits" in
  *"pubsub 134217728 33554432 60"*) ;;
  *) echo "check-ops: ops/redis/redis.conf does not set the pub/sub limit: $limits" >&2; exit 1 ;;
esac

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

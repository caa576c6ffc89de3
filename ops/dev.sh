#!/usr/bin/env bash
# The whole stack on this machine: Redis and NATS (started if not reachable), the bridge, the
# gateway on GATEWAY_ADDR, and a simulator publishing realistic RAKUDA traffic. Ctrl-C stops
# everything this script started (Redis and NATS keep running).
set -euo pipefail
cd "$(dirname "$0")/.."

./ops/dev-services.sh
if [ -f .env ]; then set -a; . ./.env; set +a; fi
export API_KEY="${API_KEY:-dev-api-key-change-me}"
# A fixed development secret; production sets its own (docs/SECURITY.md).
export TOKEN_SECRET="${TOKEN_SECRET:-dev-token-secret-change-me-0123456789}"
# The key and secret above are public examples, which the gateway accepts only in dev mode.
export GATEWAY_DEV_MODE=true
export GATEWAY_ADDR="${GATEWAY_ADDR:-127.0.0.1:8080}"
# The bridge's publish API (POST /api/realtime/publish) with a random development key: the
# bridge has no development mode and refuses the shipped change-me examples.
export BRIDGE_HTTP_ADDR="${BRIDGE_HTTP_ADDR:-127.0.0.1:9102}"
if [ -z "${PUBLISH_API_KEYS:-}" ]; then
  PUBLISH_KEY="dev$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
  export PUBLISH_API_KEYS="dev:$PUBLISH_KEY"
fi
export PUBLISH_KEY="${PUBLISH_KEY:-${PUBLISH_API_KEYS#*:}}"
export RUST_LOG="${RUST_LOG:-info}"

cargo build --quiet -p rakuda-bridge -p rakuda-gateway -p rakuda-simulator
bin=target/debug
# The demo dashboard, served by the gateway at /.
(cd web && npm run --silent build:dashboard >/dev/null)
export GATEWAY_DASHBOARD_DIR="${GATEWAY_DASHBOARD_DIR:-$PWD/web/dist}"

pids=()
stop() {
  trap - EXIT INT TERM
  [ "${#pids[@]}" -eq 0 ] || kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap stop EXIT INT TERM

"$bin/rakuda-bridge" & pids+=($!)
"$bin/rakuda-gateway" & pids+=($!)

gateway="http://$GATEWAY_ADDR"
for _ in $(seq 1 100); do
  curl -fsS "$gateway/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "$gateway/readyz" >/dev/null || { echo "dev: the gateway did not become ready" >&2; exit 1; }

cat >&2 <<MSG

  rakuda-realtime is running. The operations dashboard:

    $gateway/?apiKey=$API_KEY

  Watch live events from a terminal:

    curl -N -H 'X-API-Key: $API_KEY' $gateway/api/realtime/events

  Status and counters:  curl -s -H 'X-API-Key: $API_KEY' $gateway/api/realtime/status
                        curl -s -H 'X-API-Key: $API_KEY' $gateway/api/realtime/stats
  Publish an event over HTTP (answers with its seq once stored):

    curl -s -H 'Authorization: Bearer $PUBLISH_KEY' -H 'Content-Type: application/json' \\
      -d '{"type":"INVENTORY_CHANGE","payload":{"id":"prod_1","action":"updated"},"timestamp":"'\$(date -u +%FT%TZ)'"}' \\
      http://$BRIDGE_HTTP_ADDR/api/realtime/publish

  Prometheus metrics:   $gateway/metrics (gateway), http://${BRIDGE_METRICS_ADDR:-127.0.0.1:9101}/metrics (bridge)

MSG

"$bin/rakuda-sim" run & pids+=($!)
# Stop everything as soon as one of them exits.
wait -n

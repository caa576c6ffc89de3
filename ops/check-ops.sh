#!/usr/bin/env bash
# Checks every ops file with the tool that runs it: promtool (Prometheus config, alert rules and
# their unit tests), nginx -t, nats-server -t (single node and cluster, nkeys and passwords),
# redis-server (loads ops/redis/*.conf and tries each ACL user), systemd-analyze verify. The
# certificates, nkeys and passwords they need are made by rakuda-certs in a temp dir.
# Run by `just check-ops`, part of `just test`. The Grafana dashboard's queries and the metric
# names in every file are checked by gateway/tests/integration/ops_files.rs against running processes.
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

echo "check-ops: certificates and credentials (rakuda-certs)" >&2
# The servers' configs name certificate files and public keys, and nginx -t and nats-server -t
# load them: a throwaway set, made the way `just certs` makes it, in the scratch dir.
certs="$scratch/certs"
cargo run -q -p rakuda-testkit --bin rakuda-certs -- --out "$certs" 2>"$scratch/certs.log" || {
  cat "$scratch/certs.log" >&2
  echo "check-ops: rakuda-certs failed" >&2
  exit 1
}

echo "check-ops: nginx" >&2
# The committed files with only the certificate and the log paths pointed into the scratch dir.
mkdir -p "$scratch/nginx"
sed -e "s#^\( *\)ssl_certificate .*#\1ssl_certificate $certs/nginx.pem;#" \
  -e "s#^\( *\)ssl_certificate_key .*#\1ssl_certificate_key $certs/nginx-key.pem;#" \
  -e "s#access_log /[^ ]*#access_log $scratch/nginx/access.log#" \
  ops/nginx/nginx.conf >"$scratch/nginx/nginx.conf"
sed -e "s#access_log /[^ ]*#access_log $scratch/nginx/access.log#" \
  ops/nginx/realtime.conf >"$scratch/nginx/realtime.conf"
"$(tool nginx)" -t -q -p "$scratch/nginx" -c "$scratch/nginx/nginx.conf" -e "$scratch/nginx/error.log"
# Tokens travel in the query string (EventSource cannot send headers): no log format may hold
# it, and every access log must use the format that leaves it out.
formats=$(awk '/^ *log_format/,/;/' ops/nginx/nginx.conf)
if grep -qE '\$(request|request_uri|args|query_string|is_args|arg_[A-Za-z0-9_]+|http_referer)\b' <<<"$formats"; then
  echo "check-ops: an nginx log_format holds the query string (or the Referer): $formats" >&2
  exit 1
fi
if grep -hE '^ *access_log ' ops/nginx/*.conf | grep -vqE 'access_log (off|[^ ]+ rakuda_realtime);'; then
  echo "check-ops: an nginx access_log does not use the rakuda_realtime format" >&2
  exit 1
fi

echo "check-ops: nats-server configs" >&2
nats_server=$(tool nats-server)
# TLS files and the users' public nkeys, as `just certs` writes them for the servers.
set -a
# shellcheck disable=SC1091
. "$certs/nats.env"
set +a
"$nats_server" -t -c ops/nats/single.conf
cluster_env=(NATS_SERVER_NAME=nats-1 NATS_HOST=127.0.0.1 NATS_PORT=4222 NATS_HTTP_PORT=8222
  NATS_CLUSTER_PORT=6222 NATS_ROUTE_A=nats-route://127.0.0.1:6223
  NATS_ROUTE_B=nats-route://127.0.0.1:6224 NATS_STORE_DIR="$scratch/nats")
env "${cluster_env[@]}" "$nats_server" -t -c ops/nats/cluster.conf
# The user-and-password alternative, swapped in as DEPLOY.md says.
mkdir -p "$scratch/nats-password"
cp ops/nats/*.conf "$scratch/nats-password/"
sed -i 's/^include auth\.conf$/include auth-password.conf/' "$scratch/nats-password/single.conf" \
  "$scratch/nats-password/cluster.conf"
grep -q '^include auth-password.conf$' "$scratch/nats-password/cluster.conf" || {
  echo "check-ops: ops/nats/cluster.conf no longer has the line 'include auth.conf'" >&2
  exit 1
}
env NATS_BRIDGE_PASSWORD='$2a$11$check.ops.placeholder.hash.of.bridge' \
  NATS_GATEWAY_PASSWORD='$2a$11$check.ops.placeholder.hash.of.gateway' \
  "$nats_server" -t -c "$scratch/nats-password/single.conf"
for conf in single cluster; do
  # -t exits 0 on some semantic problems it only logs; an error line fails the check.
  if env "${cluster_env[@]}" "$nats_server" -t -c "ops/nats/$conf.conf" 2>&1 | grep -qi error; then
    echo "check-ops: nats-server reports an error in ops/nats/$conf.conf" >&2
    exit 1
  fi
done

echo "check-ops: redis (redis.conf, tls.conf, users.conf)" >&2
# Loaded into a real redis-server on a free port, which refuses an unknown or malformed line,
# with the generated copy of users.conf (the committed rules plus password hashes) and only the
# certificate paths and the port changed. Then what the deployment relies on is tried as each
# user would.
redis_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
admin_password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
"$(tool redis-server)" "$PWD/ops/redis/redis.conf" --include "$PWD/ops/redis/tls.conf" \
  --include "$certs/redis-users.conf" \
  --tls-cert-file "$certs/redis.pem" --tls-key-file "$certs/redis-key.pem" \
  --tls-ca-cert-file "$certs/ca.pem" --tls-port "$redis_port" --bind 127.0.0.1 \
  --user check-ops on ">$admin_password" '~*' '&*' '+@all' \
  --save "" --appendonly no --dir "$scratch" --daemonize yes --logfile "$scratch/redis.log" \
  --pidfile "$scratch/redis.pid"
redis_cli=$(tool redis-cli)
rcli() { "$redis_cli" --tls --cacert "$certs/ca.pem" -h 127.0.0.1 -p "$redis_port" --no-auth-warning "$@"; }
stop_redis() { rcli --user check-ops --pass "$admin_password" shutdown nosave >/dev/null 2>&1 || true; }
for _ in $(seq 1 50); do
  rcli --user check-ops --pass "$admin_password" ping >/dev/null 2>&1 && break
  sleep 0.1
done
password_of() { sed -n 's#^REDIS_URL=rediss://[^:]*:\([^@]*\)@.*#\1#p' "$certs/$1.env"; }
redis_fail() { stop_redis; echo "check-ops: ops/redis: $1" >&2; exit 1; }
limits=$(rcli --user check-ops --pass "$admin_password" config get client-output-buffer-limit | tail -1)
case "$limits" in
  *"pubsub 134217728 33554432 60"*) ;;
  *) redis_fail "redis.conf does not set the pub/sub limit: $limits" ;;
esac
case "$(rcli ping 2>&1)" in
  *NOAUTH*) ;;
  *) redis_fail "a client without a user got an answer (is 'user default off' gone?)" ;;
esac
worker=(--user rakuda-worker --pass "$(password_of worker)")
[ "$(rcli "${worker[@]}" publish rakuda:realtime:orders '{}' 2>&1)" = 0 ] ||
  redis_fail "the worker user cannot publish an event"
case "$(rcli "${worker[@]}" publish rakuda:realtime:control:beacon forged 2>&1)" in
  *NOPERM*) ;;
  *) redis_fail "the worker user may publish a bridge beacon" ;;
esac
gateway=(--user rakuda-gateway --pass "$(password_of gateway)")
[ "$(rcli "${gateway[@]}" publish rakuda:realtime:canary '{}' 2>&1)" = 0 ] ||
  redis_fail "the gateway user cannot publish its canary"
case "$(rcli "${gateway[@]}" publish rakuda:realtime:orders '{}' 2>&1)" in
  *NOPERM*) ;;
  *) redis_fail "the gateway user may publish events" ;;
esac
bridge=(--user rakuda-bridge --pass "$(password_of bridge)")
[ "$(rcli "${bridge[@]}" hgetall rakuda:realtime:bridges 2>&1)" = "" ] ||
  redis_fail "the bridge user cannot read its coverage account"
case "$(rcli "${bridge[@]}" get some:other:key 2>&1)" in
  *NOPERM*) ;;
  *) redis_fail "the bridge user may read keys other than its own" ;;
esac
# Its coverage scripts tell a restarted Redis by the run_id of INFO server.
case "$(rcli "${bridge[@]}" info server 2>&1)" in
  *run_id:*) ;;
  *) redis_fail "the bridge user cannot read INFO server (its run_id)" ;;
esac
stop_redis

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

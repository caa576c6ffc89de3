#!/usr/bin/env bash
# Makes sure Redis and NATS (JetStream) answer at the URLs the stack uses; starts local ones
# (data under .dev/) when they do not. Never touches servers that are already running.
#
# The servers started here are for development only: bound to 127.0.0.1, without TLS and
# without users, so `redis-cli`, `just publish` and the web tests work with no setup. A deployment
# runs ops/nats/*.conf and ops/redis/*.conf instead (TLS, a user per role); `just fleet` runs
# exactly that on this machine (docs/SECURITY.md, "Development").
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -f .env ]; then set -a; . ./.env; set +a; fi
REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"

# host and port of the first URL of a comma list, e.g. nats://a:4222,nats://b:4222 -> a 4222
host_port() {
  local first="${1%%,*}"
  first="${first#*://}"
  first="${first#*@}"
  first="${first%%/*}"
  echo "${first%:*} ${first##*:}"
}

reachable() {
  timeout 1 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

is_local() {
  [ "$1" = 127.0.0.1 ] || [ "$1" = localhost ]
}

wait_for() {
  local name=$1 host=$2 port=$3
  for _ in $(seq 1 100); do
    reachable "$host" "$port" && return 0
    sleep 0.1
  done
  echo "dev: $name did not come up on $host:$port; see .dev/$name.log" >&2
  exit 1
}

server() {
  command -v "$1" 2>/dev/null || { [ -x "/usr/sbin/$1" ] && echo "/usr/sbin/$1"; } || {
    echo "dev: $1 is not installed: run ./ops/bootstrap.sh" >&2
    exit 1
  }
}

mkdir -p .dev

read -r redis_host redis_port <<<"$(host_port "$REDIS_URL")"
if reachable "$redis_host" "$redis_port"; then
  echo "dev: redis is up at $redis_host:$redis_port"
elif is_local "$redis_host"; then
  echo "dev: starting redis-server on $redis_port (log: .dev/redis.log)"
  # ops/redis/redis.conf: the settings the bridge relies on (pub/sub output buffer limit).
  "$(server redis-server)" "$PWD/ops/redis/redis.conf" --daemonize yes --bind 127.0.0.1 \
    --port "$redis_port" --save "" --appendonly no --dir "$PWD/.dev" --logfile "$PWD/.dev/redis.log"
  wait_for redis "$redis_host" "$redis_port"
else
  echo "dev: REDIS_URL=$REDIS_URL does not answer and is not local; start it first" >&2
  exit 1
fi

read -r nats_host nats_port <<<"$(host_port "$NATS_URL")"
if reachable "$nats_host" "$nats_port"; then
  echo "dev: nats is up at $nats_host:$nats_port"
elif is_local "$nats_host"; then
  echo "dev: starting nats-server -js on $nats_port (log: .dev/nats.log)"
  nohup "$(server nats-server)" -a 127.0.0.1 -p "$nats_port" -js -sd "$PWD/.dev/jetstream" \
    >"$PWD/.dev/nats.log" 2>&1 &
  wait_for nats "$nats_host" "$nats_port"
else
  echo "dev: NATS_URL=$NATS_URL does not answer and is not local; start it first" >&2
  exit 1
fi

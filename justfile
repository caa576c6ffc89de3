# rakuda-realtime: the recipes a developer reaches for. `just --list` shows them all.

set dotenv-load := true

# List the recipes.
default:
    @just --list

# Install what is missing (just, redis-server, nats-server) on a Debian machine.
bootstrap:
    ./ops/bootstrap.sh

# Run the whole stack: Redis and NATS (started if not reachable), bridge, gateway on
# 127.0.0.1:8080, and a simulator publishing realistic traffic.
dev:
    ./ops/dev.sh

# A throwaway CA, certificates for NATS, Redis and nginx, NATS nkeys, Redis passwords and env
# files, into .dev/certs (git-ignored; kept if it exists, `just certs --force` makes them anew).
certs *args="":
    cargo run -q -p rakuda-testkit --bin rakuda-certs -- {{args}}

# Measure publish-to-receive latency against a running gateway (start it with SSE_DEBOUNCE_WINDOW=0).
probe count="300":
    cargo run -q -p rakuda-simulator --bin rakuda-sim -- probe --count {{count}}

# Start local Redis and NATS (JetStream) if they are not reachable.
services:
    ./ops/dev-services.sh

# Run every check and test: formatting, clippy, the ops files, then the whole workspace against real servers.
test: lint check-ops web-test
    cargo nextest run --workspace

# The web package: typecheck, unit tests, build, then the browser end-to-end run against the real stack.
web-test:
    cargo build -q -p rakuda-bridge -p rakuda-gateway -p rakuda-simulator
    cd web && npm run typecheck && npm test && npm run build && npm run e2e

# Check every ops file with its tool: promtool (config, rules, rule tests), nginx -t,
# nats-server -t, redis-server with the ACL users tried, systemd-analyze verify.
check-ops:
    ./ops/check-ops.sh

# Only the fleet test: 3 NATS nodes, 2 bridges, 2 gateways, nginx, all with TLS and credentials,
# broken piece by piece (the `deployment` module of the gateway's one integration-test binary).
test-fleet:
    cargo build -q -p rakuda-bridge
    cargo nextest run -p rakuda-gateway --test integration -E 'test(/^deployment::/)' --no-capture

# A whole fleet for a demo: Redis, 3 NATS nodes, 2 bridges, 2 gateways and nginx on
# 127.0.0.1:8088, with simulated traffic and the dashboard. Ctrl-C stops it.
fleet:
    cargo build -q -p rakuda-bridge -p rakuda-gateway -p rakuda-simulator -p rakuda-testkit
    cd web && npm run --silent build:dashboard >/dev/null
    target/debug/rakuda-fleet

# Load scenarios against the real stack, gateway pinned to core 0, then the four fleet scenarios
# (56,000 clients over 4 gateways); medians into docs/BENCHMARKS.md (~15 min, then ~35 min for the fleet).
# `just bench 1 --only fleet-56k,storm-kill` runs a subset.
bench runs="3" *args="":
    ./ops/bench.sh {{runs}} {{args}}

# Micro-benchmarks of the gateway's hot paths (Criterion).
bench-micro:
    cargo bench -p rakuda-gateway --bench hot_paths

# Formatting and clippy with warnings as errors.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Format the code.
fmt:
    cargo fmt --all

# Regenerate web/src/generated/schema.ts from the Rust schema.
gen-ts:
    cargo run -q -p rakuda-schema --bin gen-ts

# Publish a sample event on Redis: just publish inventory|orders|pricing|listings [ID] [ACTION].
# Through the bridge's HTTP API instead (answers with the event's seq):
#   just publish inventory prod_123 updated --http http://127.0.0.1:9102/api/realtime/publish --key KEY
publish channel="inventory" id="prod_123" action="updated" *flags:
    cargo run -q -p rakuda-simulator --bin rakuda-sim -- publish {{channel}} --id {{id}} --action {{action}} {{flags}}

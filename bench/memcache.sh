#!/usr/bin/env bash
# The memcache proxy's overhead, in one run: the same load straight to a
# memcached, through examples/memcache_proxy in front of that memcached, and
# through the proxy forked into two processes (`--processes 2`).
#
#   bash bench/memcache.sh            # 50 connections, 5 s per run
#   CLIENTS=200 SECS=10 bash bench/memcache.sh
#
# Two load generators, each run against both targets, back to back:
# - the example's own load client (`memcache_proxy --load`): N blocking
#   connections, one request at a time, 90% get / 10% set over 1000 keys;
#   prints ops/s and latency percentiles (p50, p99, p99.9);
# - memcslap (libmemcached-tools), `--test=get`: prints the time it took.
# Everything runs on this machine, so the load generator, memcached and the
# proxy share its cores: read the figures as a comparison, not as limits.
set -euo pipefail
cd "$(dirname "$0")/.."

CLIENTS=${CLIENTS:-50}
SECS=${SECS:-5}
VALUE_SIZE=${VALUE_SIZE:-100}
SLAP_CONCURRENCY=${SLAP_CONCURRENCY:-8}
SLAP_EXECUTE=${SLAP_EXECUTE:-20000}

for tool in memcached memcslap; do
  command -v "$tool" >/dev/null || { echo "$tool is not installed (apt: memcached libmemcached-tools)"; exit 1; }
done

cargo build --release --quiet --example memcache_proxy
BIN="${CARGO_TARGET_DIR:-target}/release/examples/memcache_proxy"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on port $1"; exit 1
}

MC_PORT=$(free_port)
PROXY_PORT=$(free_port)
PROXY2_PORT=$(free_port)
PIDS=()
# SIGTERM: the two-process proxy's parent passes it on to its children.
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; wait; }
trap cleanup EXIT

# `-u root` only matters when run as root (memcached refuses root without it).
memcached -l 127.0.0.1 -p "$MC_PORT" -U 0 -m 256 -u root &
PIDS+=($!)
"$BIN" --listen "127.0.0.1:$PROXY_PORT" --upstream "127.0.0.1:$MC_PORT" --timeout-ms 2000 >/dev/null &
PIDS+=($!)
"$BIN" --listen "127.0.0.1:$PROXY2_PORT" --upstream "127.0.0.1:$MC_PORT" --timeout-ms 2000 \
  --processes 2 >/dev/null &
PIDS+=($!)
wait_port "$MC_PORT"
wait_port "$PROXY_PORT"
wait_port "$PROXY2_PORT"

echo "== $(date -u +%FT%TZ), $(nproc) cores, memcached $(memcached -V | cut -d' ' -f2)"
echo "== load client: $CLIENTS connections, ${SECS}s, ${VALUE_SIZE}-byte values, 90% get / 10% set"
echo -n "direct  "
"$BIN" --load "127.0.0.1:$MC_PORT" --clients "$CLIENTS" --seconds "$SECS" --value-size "$VALUE_SIZE"
echo -n "proxy   "
"$BIN" --load "127.0.0.1:$PROXY_PORT" --clients "$CLIENTS" --seconds "$SECS" --value-size "$VALUE_SIZE"
echo -n "proxy*2 "
"$BIN" --load "127.0.0.1:$PROXY2_PORT" --clients "$CLIENTS" --seconds "$SECS" --value-size "$VALUE_SIZE"

echo "== memcslap --test=get: $SLAP_CONCURRENCY threads, $SLAP_EXECUTE gets each"
for target in "direct 127.0.0.1:$MC_PORT" "proxy 127.0.0.1:$PROXY_PORT" \
  "proxy*2 127.0.0.1:$PROXY2_PORT"; do
  set -- $target
  echo "-- $1"
  memcslap --servers="$2" --test=get --concurrency="$SLAP_CONCURRENCY" \
    --execute-number="$SLAP_EXECUTE" --tcp-nodelay 2>&1 | sed 's/^/   /'
done

#!/usr/bin/env bash
# The soak run of issue #11 (opt-in, not in CI): HTTP (examples/hello_server
# under wrk) and the memcached proxy (examples/memcache_proxy in front of two
# real memcached, under its own load client) for SECS seconds, with a fault
# injected every FAULT_EVERY seconds, in turn:
#   - 50 connections to each server send half a request and reset (RST);
#   - one upstream memcached is SIGSTOPped for 1 s (the proxy's calls to it
#     time out and answer SERVER_ERROR), then SIGCONTinued.
# RSS and open descriptors of both squall processes are taken after a
# warm-up and again once the load has ended; the run fails if the fd counts
# differ or RSS grew by more than RSS_MARGIN_KB.
#
#   bash bench/soak.sh                   # 5 minutes
#   SECS=30 FAULT_EVERY=3 bash bench/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${SECS:-300}
FAULT_EVERY=${FAULT_EVERY:-5}
RSS_MARGIN_KB=${RSS_MARGIN_KB:-2048}

for tool in wrk memcached python3; do
  command -v "$tool" >/dev/null || { echo "$tool is not installed"; exit 1; }
done

cargo build --release --quiet --example hello_server --example memcache_proxy
BIN="${CARGO_TARGET_DIR:-target}/release/examples"

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
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
fds() { ls "/proc/$1/fd" | wc -l; }
# Opens 50 connections to port $1, sends $2 (half a request), resets each.
resets() {
  python3 - "$1" "$2" <<'PY'
import socket, struct, sys
port, payload = int(sys.argv[1]), sys.argv[2].encode()
for _ in range(50):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(payload)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
PY
}

MC1=$(free_port); MC2=$(free_port); HTTP=$(free_port); PROXY=$(free_port)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -CONT "$pid" 2>/dev/null || true; kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

memcached -l 127.0.0.1 -p "$MC1" -U 0 -m 64 -u root & PIDS+=($!)
memcached -l 127.0.0.1 -p "$MC2" -U 0 -m 64 -u root & MC2_PID=$!; PIDS+=($MC2_PID)
"$BIN/hello_server" "$HTTP" >/dev/null 2>&1 & HTTP_PID=$!; PIDS+=($HTTP_PID)
wait_port "$MC1"; wait_port "$MC2"
"$BIN/memcache_proxy" --listen "127.0.0.1:$PROXY" --upstream "127.0.0.1:$MC1" \
  --upstream "127.0.0.1:$MC2" --timeout-ms 300 --dead-retry-ms 500 >/dev/null 2>&1 &
PROXY_PID=$!; PIDS+=($PROXY_PID)
wait_port "$HTTP"; wait_port "$PROXY"

echo "warm-up (5 s)"
wrk -t1 -c50 -d5s "http://127.0.0.1:$HTTP/" >/dev/null &
"$BIN/memcache_proxy" --load "127.0.0.1:$PROXY" --clients 20 --seconds 5 >/dev/null
wait %% 2>/dev/null || true
sleep 1
H_RSS0=$(rss_kb $HTTP_PID); H_FD0=$(fds $HTTP_PID)
P_RSS0=$(rss_kb $PROXY_PID); P_FD0=$(fds $PROXY_PID)
echo "start: http RSS ${H_RSS0} KiB, ${H_FD0} fds; proxy RSS ${P_RSS0} KiB, ${P_FD0} fds"

echo "soak: ${SECS} s, a fault every ${FAULT_EVERY} s"
wrk -t1 -c50 -d"${SECS}s" "http://127.0.0.1:$HTTP/" >/tmp/soak-wrk.$$ 2>&1 & WRK=$!
"$BIN/memcache_proxy" --load "127.0.0.1:$PROXY" --clients 20 --seconds "$SECS" \
  >/tmp/soak-load.$$ 2>&1 & LOAD=$!
faults=0; stops=0; resets_done=0
end=$((SECONDS + SECS))
while [ $SECONDS -lt $((end - FAULT_EVERY)) ]; do
  sleep "$FAULT_EVERY"
  if [ $((faults % 2)) -eq 0 ]; then
    resets "$HTTP" $'GET / HTTP/1.1\r\nHost: x\r\nX-Half: ' || true
    resets "$PROXY" $'set k 0 0 100\r\nhalf' || true
    resets_done=$((resets_done + 1))
  else
    kill -STOP "$MC2_PID"; sleep 1; kill -CONT "$MC2_PID"
    stops=$((stops + 1))
  fi
  faults=$((faults + 1))
done
wait "$WRK" "$LOAD" || true
sleep 2
H_RSS1=$(rss_kb $HTTP_PID); H_FD1=$(fds $HTTP_PID)
P_RSS1=$(rss_kb $PROXY_PID); P_FD1=$(fds $PROXY_PID)
echo "faults: $resets_done rounds of 100 resets, $stops SIGSTOPs of an upstream"
echo "wrk:"; grep -E "Requests/sec|requests in|Socket errors|Non-2xx" /tmp/soak-wrk.$$ || true
echo "memcache load:"; tail -n 3 /tmp/soak-load.$$ || true
rm -f /tmp/soak-wrk.$$ /tmp/soak-load.$$
echo "end:   http RSS ${H_RSS1} KiB, ${H_FD1} fds; proxy RSS ${P_RSS1} KiB, ${P_FD1} fds"
ok=1
[ "$H_FD0" -eq "$H_FD1" ] || { echo "FAIL: http fds $H_FD0 -> $H_FD1"; ok=0; }
[ "$P_FD0" -eq "$P_FD1" ] || { echo "FAIL: proxy fds $P_FD0 -> $P_FD1"; ok=0; }
[ $((H_RSS1 - H_RSS0)) -le "$RSS_MARGIN_KB" ] || { echo "FAIL: http RSS grew $((H_RSS1 - H_RSS0)) KiB"; ok=0; }
[ $((P_RSS1 - P_RSS0)) -le "$RSS_MARGIN_KB" ] || { echo "FAIL: proxy RSS grew $((P_RSS1 - P_RSS0)) KiB"; ok=0; }
[ $ok -eq 1 ] && echo "soak OK"
[ $ok -eq 1 ]

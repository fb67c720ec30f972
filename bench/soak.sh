#!/usr/bin/env bash
# The soak run of issues #11 and #26 (opt-in, not in CI): HTTP
# (examples/hello_server under wrk) and the memcached proxy
# (examples/memcache_proxy in front of two real memcached, under its own
# load client) for SECS seconds, while hostile clients attack both
# (bench/attackers.py, under `nice`, each replacing a connection the server
# closes, so the numbers below stay held):
#   - SLOW blank-line senders ("\r\n" every 5 s, never a request line),
#   - SLOW slow heads (one header byte a second, never finished),
#   - SLOW slow bodies (Content-Length 50 MB, one byte every 10 s),
#   - RESET_RATE connections a second that send part of a request and reset,
#   - MGET proxy clients asking for 800 MiB in one multi-get, reading
#     nothing, resetting after 5 s;
# and, every FAULT_EVERY seconds, in turn:
#   - 50 connections to each server send half a request and reset (RST);
#   - one upstream memcached is SIGSTOPped for 1 s (the proxy's calls to it
#     time out and answer SERVER_ERROR), then SIGCONTinued.
# The normal HTTP client is wrk -c50, run in 10 s slices: every 10 s a row
# with both servers' open descriptors and RSS and the slice's requests,
# errors (socket errors and non-2xx answers) and p99 latency.
#
# The run fails if wrk saw any error, a server died or logged a panic, a
# server's descriptors or RSS in the last minute rise more than 10% above
# those of the minute from FLAT_FROM seconds (when every slow attacker has
# been through one 60 s timeout and reconnected: the steady state; maxima
# of each minute are compared), or once the attackers are gone the
# descriptors differ from the start (after a warm-up).
#
#   bash bench/soak.sh                   # 5 minutes, SLOW=1000
#   SECS=60 SLOW=200 FLAT_FROM=30 bash bench/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${SECS:-300}
FAULT_EVERY=${FAULT_EVERY:-5}
SLOW=${SLOW:-1000}
RESET_RATE=${RESET_RATE:-20}
MGET=${MGET:-10}
FLAT_FROM=${FLAT_FROM:-90}

for tool in wrk memcached python3; do
  command -v "$tool" >/dev/null || { echo "$tool is not installed"; exit 1; }
done
ulimit -n "$(ulimit -Hn)"

cargo build --release --quiet --example hello_server --example memcache_proxy
BIN="${CARGO_TARGET_DIR:-target}/release/examples"
LOGS=$(mktemp -d /tmp/soak.XXXXXX)

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
. bench/lib.sh # rss_kb, fds, wrk_row (the working directory is the repository)
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
ATTACKERS=()
cleanup() {
  for pid in "${ATTACKERS[@]}" "${PIDS[@]}"; do
    kill -CONT "$pid" 2>/dev/null || true; kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$LOGS"
}
trap cleanup EXIT

memcached -l 127.0.0.1 -p "$MC1" -U 0 -m 64 -u root & PIDS+=($!)
memcached -l 127.0.0.1 -p "$MC2" -U 0 -m 64 -u root & MC2_PID=$!; PIDS+=($MC2_PID)
"$BIN/hello_server" "$HTTP" >/dev/null 2>"$LOGS/http.err" & HTTP_PID=$!; PIDS+=($HTTP_PID)
wait_port "$MC1"; wait_port "$MC2"
"$BIN/memcache_proxy" --listen "127.0.0.1:$PROXY" --upstream "127.0.0.1:$MC1" \
  --upstream "127.0.0.1:$MC2" --timeout-ms 300 --dead-retry-ms 500 >/dev/null 2>"$LOGS/proxy.err" &
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

attack() { # name, attackers.py arguments...
  local name=$1; shift
  nice -n 10 python3 bench/attackers.py "$@" </dev/null >"$LOGS/$name.out" 2>&1 &
  ATTACKERS+=($!)
}
echo "soak: ${SECS} s; attackers: ${SLOW} blank-line senders, ${SLOW} slow heads," \
  "${SLOW} slow bodies, ${RESET_RATE} resets/s, ${MGET} proxy multi-gets; a fault every ${FAULT_EVERY} s"
attack blank blank "$HTTP" "$SLOW"
attack head head "$HTTP" "$SLOW"
attack body body "$HTTP" "$SLOW"
attack reset reset "$HTTP" --rate "$RESET_RATE"
attack mget mget "$PROXY" "$MGET"

"$BIN/memcache_proxy" --load "127.0.0.1:$PROXY" --clients 20 --seconds "$SECS" \
  >"$LOGS/load" 2>&1 & LOAD=$!
(
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
  echo "faults: $resets_done rounds of 100 resets, $stops SIGSTOPs of an upstream"
) >"$LOGS/faults" 2>&1 & FAULTS=$!

ROWS="$LOGS/rows"
printf '| t (s) | http fds | http RSS (KiB) | proxy fds | proxy RSS (KiB) | wrk requests | errors | p99 |\n' | tee "$ROWS"
printf '|---|---|---|---|---|---|---|---|\n' | tee -a "$ROWS"
t=0; total_req=0; total_err=0
while [ $t -lt "$SECS" ]; do
  wrk -t1 -c50 -d10s --latency "http://127.0.0.1:$HTTP/" >"$LOGS/wrk" 2>&1 || true
  t=$((t + 10))
  read -r req err p99 < <(wrk_row "$LOGS/wrk")
  total_req=$((total_req + req)); total_err=$((total_err + err))
  kill -0 "$HTTP_PID" 2>/dev/null || { echo "FAIL: the HTTP server died"; exit 1; }
  kill -0 "$PROXY_PID" 2>/dev/null || { echo "FAIL: the proxy died"; exit 1; }
  printf '| %d | %d | %d | %d | %d | %d | %d | %s |\n' "$t" "$(fds $HTTP_PID)" "$(rss_kb $HTTP_PID)" \
    "$(fds $PROXY_PID)" "$(rss_kb $PROXY_PID)" "$req" "$err" "$p99" | tee -a "$ROWS"
done
wait "$LOAD" "$FAULTS" || true
for pid in "${ATTACKERS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" || true; done
ATTACKERS=()
# The attackers reset what they held: give the servers a moment to see it.
for _ in $(seq 50); do
  [ "$(fds $HTTP_PID)" -le "$H_FD0" ] && [ "$(fds $PROXY_PID)" -le "$P_FD0" ] && break
  sleep 0.1
done
sleep 1
H_RSS1=$(rss_kb $HTTP_PID); H_FD1=$(fds $HTTP_PID)
P_RSS1=$(rss_kb $PROXY_PID); P_FD1=$(fds $PROXY_PID)
cat "$LOGS/faults"
for a in blank head body reset mget; do
  echo "attackers $a: $(grep STATUS "$LOGS/$a.out" | tail -n 1)"
done
echo "wrk: $total_req requests in ${SECS} s, $total_err errors"
echo "memcache load:"; tail -n 3 "$LOGS/load" || true
echo "end (attackers gone): http RSS ${H_RSS1} KiB, ${H_FD1} fds; proxy RSS ${P_RSS1} KiB, ${P_FD1} fds"

ok=1
# Steady state: the largest value of the last minute against the largest
# of the minute from FLAT_FROM (maxima, not single samples: the multi-get
# attackers come and go every few seconds, and a sample may fall between).
flat() { # column, what
  local from last
  from=$(awk -F'|' -v t="$FLAT_FROM" -v c="$1" \
    '$2 + 0 >= t && $2 + 0 < t + 60 && $c + 0 > m { m = $c + 0 } END { print m + 0 }' "$ROWS")
  last=$(tail -n 6 "$ROWS" | awk -F'|' -v c="$1" '$c + 0 > m { m = $c + 0 } END { print m + 0 }')
  if [ "$from" -eq 0 ]; then
    echo "no rows from t=$FLAT_FROM"; ok=0
  elif [ "$last" -gt $((from + from / 10)) ]; then
    echo "FAIL: $2 grew from at most $from (t=$FLAT_FROM..$((FLAT_FROM + 60))) to $last (last minute)"; ok=0
  else
    echo "flat: $2 at most $from (t=$FLAT_FROM..$((FLAT_FROM + 60))), $last (last minute)"
  fi
}
flat 3 "http fds"; flat 4 "http RSS"; flat 5 "proxy fds"; flat 6 "proxy RSS"
[ "$total_err" -eq 0 ] || { echo "FAIL: the normal client saw $total_err errors"; ok=0; }
[ "$H_FD0" -eq "$H_FD1" ] || { echo "FAIL: http fds $H_FD0 -> $H_FD1"; ok=0; }
[ "$P_FD0" -eq "$P_FD1" ] || { echo "FAIL: proxy fds $P_FD0 -> $P_FD1"; ok=0; }
if grep -qi panic "$LOGS/http.err" "$LOGS/proxy.err"; then
  echo "FAIL: a server logged a panic:"; grep -i panic "$LOGS/http.err" "$LOGS/proxy.err" | head -n 5; ok=0
fi
[ $ok -eq 1 ] && echo "soak OK"
[ $ok -eq 1 ]

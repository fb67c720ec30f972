#!/usr/bin/env bash
# N concurrent slow clients of one kind against examples/hello_server
# (issue #26), beside a normal client: by default N=10000 slow bodies
# (a head declaring Content-Length 50 MB, then one body byte every 10 s;
# bench/attackers.py body). Every 10 s for SECS seconds a row: the
# server's open descriptors and RSS, the slow connections held and closed
# by the server (and what it answered them: 408 once a body is past
# body_timeout, 60 s, plus a second per 500 bytes), and a normal client's
# 10 s slice: wrk -c10 requests, errors, p99 latency (target < 50 ms).
# The attackers run under `nice` and replace what the server closes.
#
#   bash bench/slow_bodies.sh                      # 10,000 slow bodies, 120 s
#   MODE=blank N=10000 bash bench/slow_bodies.sh   # blank-line senders instead
#   N=1000 SECS=30 bash bench/slow_bodies.sh       # a quick look
#   MODE=head INTERVAL=5 bash bench/slow_bodies.sh  # bench/slow_clients.sh's pace
#
# Environment: MODE (body; any mode of bench/attackers.py but reset and
# mget), N (10000), SECS (120), INTERVAL (s between a connection's sends;
# attackers.py's default for the mode), CARGO_TARGET_DIR. Needs python3, wrk and
# `ulimit -n` above N (the soft limit is raised to the hard one).
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=${MODE:-body}
N=${N:-10000}
SECS=${SECS:-120}
INTERVAL=${INTERVAL:-}

for tool in wrk python3; do
  command -v "$tool" >/dev/null || { echo "$tool is not installed"; exit 1; }
done
ulimit -n "$(ulimit -Hn)"
cargo build --release --quiet --example hello_server
BIN="${CARGO_TARGET_DIR:-target}/release/examples"
LOGS=$(mktemp -d /tmp/slow_bodies.XXXXXX)

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
. bench/lib.sh # rss_kb, fds, wrk_row (the working directory is the repository)

SERVER=; ATTACK=
cleanup() {
  [ -z "$ATTACK" ] || kill "$ATTACK" 2>/dev/null || true
  [ -z "$SERVER" ] || kill "$SERVER" 2>/dev/null || true
  exec 4>&- 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$LOGS"
}
trap cleanup EXIT

"$BIN/hello_server" "$PORT" >/dev/null 2>"$LOGS/server.err" & SERVER=$!
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.05
done
wrk -t1 -c10 -d2s "http://127.0.0.1:$PORT/" >/dev/null
sleep 1
RSS0=$(rss_kb $SERVER); FD0=$(fds $SERVER)
echo "server after a warm-up: RSS $RSS0 KiB, $FD0 fds"

# The attackers read "status" lines on fd 4 (a fifo) and answer on stdout.
mkfifo "$LOGS/ctl"
start=$SECONDS
nice -n 10 python3 bench/attackers.py "$MODE" "$PORT" "$N" --status 3600 ${INTERVAL:+--interval "$INTERVAL"} \
  <"$LOGS/ctl" >"$LOGS/attack" 2>&1 & ATTACK=$!
exec 4>"$LOGS/ctl"
until grep -q '^OPEN' "$LOGS/attack"; do
  kill -0 "$ATTACK" 2>/dev/null || { cat "$LOGS/attack"; exit 1; }
  sleep 0.2
done
echo "$(grep '^OPEN' "$LOGS/attack") $MODE connections in $((SECONDS - start)) s;" \
  "server RSS $(rss_kb $SERVER) KiB, $(fds $SERVER) fds"

printf '| t (s) | server fds | server RSS (KiB) | held | closed by server | answers | wrk -c10 requests | errors | p99 |\n'
printf '|---|---|---|---|---|---|---|---|---|\n'
t=0; worst=0
while [ $t -lt "$SECS" ]; do
  wrk -t1 -c10 -d10s --latency "http://127.0.0.1:$PORT/" >"$LOGS/wrk" 2>&1 || true
  t=$((t + 10))
  read -r req err p99 < <(wrk_row "$LOGS/wrk")
  echo status >&4
  sleep 0.3
  st=$(grep '^STATUS' "$LOGS/attack" | tail -n 1)
  held=$(sed -n 's/.* open=\([0-9]*\).*/\1/p' <<<"$st")
  closed=$(sed -n 's/.* closed=\([0-9]*\).*/\1/p' <<<"$st")
  answers=$(sed -n 's/.* answers=\([^ ]*\).*/\1/p' <<<"$st")
  rss=$(rss_kb $SERVER)
  [ "$rss" -gt "$worst" ] && worst=$rss
  printf '| %d | %d | %d | %s | %s | %s | %d | %d | %s |\n' "$t" "$(fds $SERVER)" "$rss" \
    "$held" "$closed" "$answers" "$req" "$err" "$p99"
done
echo "server RSS: $RSS0 KiB before, at most $worst KiB with $N $MODE clients:" \
  "$(( (worst - RSS0) * 1024 / N )) bytes per slow connection"
grep -i panic "$LOGS/server.err" && { echo "FAIL: the server panicked"; exit 1; }
kill -0 "$SERVER" || { echo "FAIL: the server died"; exit 1; }

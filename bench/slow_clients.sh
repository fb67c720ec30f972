#!/usr/bin/env bash
# Slowloris against hello-world servers (issue #26): N clients each trickle a
# request head, one byte every INTERVAL seconds, never finishing it
# (bench/attackers.py head --no-reconnect), while wrk plays a normal client. Per server, one
# at a time, pinned as in bench/http.sh (server on SERVER_CPU; wrk and the
# slow clients on WRK_CPU):
#   - the normal client's p50/p99 latency and req/s without slow clients,
#     then with the N slow clients connected and trickling;
#   - the server's RSS (VmRSS) before, with the slow clients connected
#     (after the wrk run), and AFTER seconds after they have gone;
#   - how many slow connections the server still held at the end of the
#     run, and how many it had closed (a header timeout shorter than the
#     run closes them: squall's is 60 s, hyper's hello has none, Tornado's
#     idle timeout is an hour).
#
#   bench/slow_clients.sh                       # squall hyper tornado, N=10000
#   N=2000 DURATION=5 bench/slow_clients.sh squall
#
# Environment: N (10000), INTERVAL (s between a slow client's bytes, 5),
# DURATION (s of each wrk run, 10), CONNS (wrk connections, 10), AFTER (s
# waited after the slow clients close, 5), SERVER_CPU (1), WRK_CPU (0),
# PORT (18280), CARGO_TARGET_DIR, PEERS_TARGET_DIR (see bench/servers.sh).
# Needs wrk, taskset, curl, python3 (with tornado 6 for Tornado) and a
# hard `ulimit -n` above N (the soft limit is raised to it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-10000}
INTERVAL=${INTERVAL:-5}
DURATION=${DURATION:-10}
CONNS=${CONNS:-10}
AFTER=${AFTER:-5}
SERVER_CPU=${SERVER_CPU:-1}
WRK_CPU=${WRK_CPU:-0}
PORT=${PORT:-18280}
export RUST_LOG=${RUST_LOG:-warn}
servers=("$@")
[ ${#servers[@]} -gt 0 ] || servers=(squall hyper tornado)
for tool in wrk taskset curl python3; do
  command -v "$tool" >/dev/null || { echo "$tool not found" >&2; exit 1; }
done
. "$root/bench/servers.sh"
. "$root/bench/lib.sh"
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((N + 1000)) ]; then
  echo "open-file limit $(ulimit -n) is too low for N=$N" >&2; exit 1
fi

(cd "$root" && cargo build -q --release --example hello_server --example hello_raw)
bins=$(peer_bins "${servers[@]}")
if [ -n "$bins" ]; then
  # shellcheck disable=SC2086
  (cd "$root/bench/peers" && CARGO_TARGET_DIR="$peers_target" cargo build -q --release $bins)
fi
selected=()
for s in "${servers[@]}"; do
  if [ "$s" = tornado ] && ! python3 -c 'import tornado, sys; sys.exit(not tornado.version.startswith("6."))' 2>/dev/null; then
    echo "tornado: SKIPPED: python3 has no Tornado 6 (a venv with it first on PATH)"
    continue
  fi
  selected+=("$s")
done

work=$(mktemp -d)
pid=
slow_pid=
cleanup() {
  [ -z "$slow_pid" ] || kill "$slow_pid" 2>/dev/null || true
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rss_mib() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

# One wrk run: "req/s p50_ms p99_ms errors".
normal_client() { # port
  taskset -c "$WRK_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 5s \
    -s "$root/bench/http.lua" "http://127.0.0.1:$1/" | sed -n 's/^WRK //p' | tr ' ' '\n' |
    awk -F= '{ v[$1] = $2 } END {
      err = v["connect_errors"] + v["read_errors"] + v["write_errors"] + v["status_errors"] + v["timeouts"]
      printf "%.0f %.2f %.2f %d\n", v["requests"] / (v["duration_us"] / 1e6), v["p50_us"] / 1000, v["p99_us"] / 1000, err }'
}

printf '%-8s %6s | %-26s | %-26s | %8s %8s %8s | %s\n' server N "alone: req/s p50/p99 ms" \
  "with slow: req/s p50/p99 ms" "RSS MiB" "slow" "gone" "slow held/closed by server"
for i in "${!selected[@]}"; do
  s=${selected[$i]}
  port=$((PORT + i))
  start_server "$s" "$port"
  taskset -c "$WRK_CPU" wrk -t1 -c"$CONNS" -d1s "http://127.0.0.1:$port/" >/dev/null
  read -r a_rps a_p50 a_p99 a_err < <(normal_client "$port")
  sleep 1
  base=$(rss_mib "$pid")
  # The slow clients, talked to through two fifos.
  rm -f "$work/in" "$work/out"; mkfifo "$work/in" "$work/out"
  taskset -c "$WRK_CPU" python3 "$root/bench/attackers.py" head "$port" "$N" --interval "$INTERVAL" \
    --no-reconnect --status 3600 <"$work/in" >"$work/out" &
  slow_pid=$!
  exec 7>"$work/in" 8<"$work/out"
  read -r word opened <&8
  [ "$word" = OPEN ] || { echo "slow clients: $word $opened" >&2; exit 1; }
  # A whole trickling round before the normal client starts.
  sleep "$INTERVAL"
  read -r w_rps w_p50 w_p99 w_err < <(normal_client "$port")
  with=$(rss_mib "$pid")
  echo status >&7
  # "STATUS t=.. open=HELD opened=.. closed=CLOSED ...": held and closed.
  read -r word status <&8
  [ "$word" = STATUS ] || { echo "slow clients: $word $status" >&2; exit 1; }
  held=$(sed -n 's/.*open=\([0-9]*\).*/\1/p' <<<"$status")
  closed=$(sed -n 's/.*closed=\([0-9]*\).*/\1/p' <<<"$status")
  exec 7>&-
  wait "$slow_pid" || true
  exec 8<&-
  slow_pid=
  sleep "$AFTER"
  gone=$(rss_mib "$pid")
  errs=""
  [ "$a_err$w_err" = 00 ] || errs=" (wrk errors: $a_err alone, $w_err with slow clients)"
  printf '%-8s %6s | %8s %7s/%-8s | %8s %7s/%-8s | %8s %8s %8s | %s/%s of %s%s\n' "$s" "$N" \
    "$a_rps" "$a_p50" "$a_p99" "$w_rps" "$w_p50" "$w_p99" "$base" "$with" "$gone" \
    "$held" "$closed" "$opened" "$errs"
  stop_server
done
echo
echo "N=$N INTERVAL=$INTERVAL DURATION=$DURATION CONNS=$CONNS AFTER=$AFTER; $(date -u '+%Y-%m-%d %H:%M UTC');" \
  "load average $(cut -d' ' -f1-3 /proc/loadavg)"

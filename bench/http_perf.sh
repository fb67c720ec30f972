#!/usr/bin/env bash
# User-mode CPU cycles and instructions per HTTP request, from the CPU's own
# counters (perf stat), under the headline's load: each hello-world server
# alone on one core, wrk (one thread) on the other. Cycles in user mode are
# the user CPU time of bench/http.sh, without its 10 ms clock ticks and
# with much less run-to-run noise; instructions say how much of a change is
# the code rather than the machine.
#
#   bench/http_perf.sh                     # squall hyper mio, RUNS=3 x 5 s: ~2 min
#   RUNS=5 bench/http_perf.sh squall mio
#   bench/http_perf.sh squall hyper actix may mio   # the framework peers too (bench/servers.sh)
#
# Tests: -c 100 one request at a time, and -c 100 pipelined PIPELINE deep.
# Each figure is the median of RUNS runs (servers take turns within a run);
# then squall's ratio to each peer.
#
# Environment: DURATION (s per wrk run, 5), RUNS (3), PIPELINE (16),
# SERVER_CPU (1), WRK_CPU (0), PORT (18280). CARGO_TARGET_DIR is honoured.
# Needs: perf (with access to the counters: perf_event_paranoid <= 2),
# wrk, taskset, curl.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-5}
RUNS=${RUNS:-3}
PIPELINE=${PIPELINE:-16}
SERVER_CPU=${SERVER_CPU:-1}
WRK_CPU=${WRK_CPU:-0}
PORT=${PORT:-18280}
export RUST_LOG=${RUST_LOG:-warn}

servers=("$@")
[ ${#servers[@]} -gt 0 ] || servers=(squall hyper mio)
for tool in perf wrk taskset curl; do
  command -v "$tool" >/dev/null || { echo "$tool not found" >&2; exit 1; }
done
# perf exits 0 when the counter is "<not supported>" (a VM without them): read the count.
perf stat -x, -e instructions:u true 2>&1 >/dev/null | grep -q '^[0-9]' ||
  { echo "perf cannot read the CPU counters here (perf_event_paranoid, or a VM without them)" >&2; exit 1; }

. "$root/bench/servers.sh"
(cd "$root" && cargo build -q --release --example hello_server --example hello_raw)
peers=$(peer_bins "${servers[@]}")
[ -z "$peers" ] || (cd "$root/bench/peers" && CARGO_TARGET_DIR="$peers_target" cargo build -q --release $peers)

. "$root/bench/lib.sh"
scratch

# One wrk run under perf stat; appends "instructions cycles" per request
# to $work/NAME.TEST.
measure() { # name port test pipeline-depth
  sleep 0.5
  perf stat -x, -e instructions:u,cycles:u -p "$pid" -o "$work/perf" &
  local perf_pid=$!
  sleep 0.2
  WRK_PIPELINE=$4 taskset -c "$WRK_CPU" wrk -t1 -c100 -d"${DURATION}s" \
    -s "$root/bench/http.lua" "http://127.0.0.1:$2/" >"$work/wrk.out"
  kill -INT "$perf_pid"
  wait "$perf_pid" 2>/dev/null || true
  local n
  n=$(sed -n 's/^WRK .*requests=\([0-9]*\).*/\1/p' "$work/wrk.out")
  [ -n "$n" ] && [ "$n" -gt 0 ] || { echo "wrk counted no requests:" >&2; cat "$work/wrk.out" >&2; exit 1; }
  awk -F, -v n="$n" '$3 ~ /^instructions/ { i = $1 } $3 ~ /^cycles/ { c = $1 }
    END { printf "%.0f %.0f\n", i / n, c / n }' "$work/perf" >>"$work/$1.$3"
}

echo "==> servers on CPU $SERVER_CPU, wrk -t1 -c100 on CPU $WRK_CPU; $RUNS run(s) of ${DURATION}s per test"
for run in $(seq "$RUNS"); do
  for i in "${!servers[@]}"; do
    name=${servers[$i]}
    port=$((PORT + i))
    taskset -c "$SERVER_CPU" $(server_cmd "$name" "$port") >"$work/$name.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do
      curl -sf -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null && break
      sleep 0.1
    done
    taskset -c "$WRK_CPU" wrk -t1 -c100 -d1s "http://127.0.0.1:$port/" >/dev/null
    measure "$name" "$port" c100 1
    measure "$name" "$port" pipe "$PIPELINE"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    pid=
    printf '    run %d/%d %-7s c100: %s  pipelined: %s (instructions cycles per request)\n' "$run" "$RUNS" \
      "$name" "$(tail -1 "$work/$name.c100")" "$(tail -1 "$work/$name.pipe")"
  done
done


echo
echo "User-mode work per request (medians of $RUNS; perf stat instructions:u, cycles:u):"
printf '%-8s %14s %14s %14s %14s\n' server "c100 instr" "c100 cycles" "pipe instr" "pipe cycles"
for s in "${servers[@]}"; do
  printf '%-8s %14s %14s %14s %14s\n' "$s" "$(median "$work/$s.c100" 1)" "$(median "$work/$s.c100" 2)" \
    "$(median "$work/$s.pipe" 1)" "$(median "$work/$s.pipe" 2)"
done
case " ${servers[*]} " in
  *" squall "*)
    echo
    echo "squall / peer (below 1: squall does less):"
    for s in "${servers[@]}"; do
      [ "$s" = squall ] && continue
      awk -v s="$s" -v a="$(median "$work/squall.c100" 2)" -v b="$(median "$work/$s.c100" 2)" \
        -v c="$(median "$work/squall.c100" 1)" -v d="$(median "$work/$s.c100" 1)" \
        -v e="$(median "$work/squall.pipe" 2)" -v f="$(median "$work/$s.pipe" 2)" \
        -v g="$(median "$work/squall.pipe" 1)" -v h="$(median "$work/$s.pipe" 1)" 'BEGIN {
        printf "  vs %-7s c100 cycles %.2fx (instr %.2fx), pipelined cycles %.2fx (instr %.2fx)\n",
          s, a / b, c / d, e / f, g / h }'
    done
    ;;
esac

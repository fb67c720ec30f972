#!/usr/bin/env bash
# squall vs tokio, operation by operation: builds bench/peers, runs it with the
# loop pinned to one core (and the cross-thread producer on another), and
# prints each operation's median (ns/op) and the ratio squall/tokio.
#
#   bench/run.sh                 # about 2 minutes
#   MEASURE=10 bench/run.sh      # longer runs, steadier figures
#   LOOP_CPU=1 PRODUCER_CPU=0 bench/run.sh
#
# Extra arguments go to criterion, e.g. a filter: bench/run.sh timeout
# CARGO_TARGET_DIR is honoured (criterion then writes under it, too).
set -euo pipefail
cd "$(dirname "$0")/peers"

LOOP_CPU=${LOOP_CPU:-1}
PRODUCER_CPU=${PRODUCER_CPU:-0}
WARMUP=${WARMUP:-1}
MEASURE=${MEASURE:-3}

echo "==> build"
cargo bench --bench peers --no-run

echo "==> run: loop on CPU $LOOP_CPU, producer on CPU $PRODUCER_CPU"
ncpu=$(nproc --all)
if [ "$PRODUCER_CPU" -ge "$ncpu" ] || [ "$PRODUCER_CPU" = "$LOOP_CPU" ]; then
  echo "    (producer CPU $PRODUCER_CPU unusable on $ncpu CPUs: producer stays on CPU $LOOP_CPU)"
  unset PRODUCER_CPU
else
  export SQUALL_BENCH_PRODUCER_CPU=$PRODUCER_CPU
fi
marker=$(mktemp)
trap 'rm -f "$marker"' EXIT
set -x
taskset -c "$LOOP_CPU" cargo bench --bench peers -- \
  --warm-up-time "$WARMUP" --measurement-time "$MEASURE" --noplot "$@"
{ set +x; } 2>/dev/null

# criterion's estimates.json: {"mean":{...,"point_estimate":N,...},"median":{...},...}
estimate() { # stat group id
  local f="${CARGO_TARGET_DIR:-target}/criterion/$2/$3/new/estimates.json"
  # "-" for a benchmark this run skipped (a filter) rather than a stale figure.
  [ -f "$f" ] && [ "$f" -nt "$marker" ] || { echo "-"; return; }
  sed -E "s/.*\"$1\":\{\"confidence_interval\":\{[^}]*\},\"point_estimate\":([0-9.eE+-]+).*/\1/" "$f"
}

echo
echo "ns/op; loop on CPU $LOOP_CPU, producer on CPU ${PRODUCER_CPU:-$LOOP_CPU}; load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
fmt='%-34s %9s %9s %8s   %9s %9s %8s\n'
printf "$fmt" "" "median" "" "" "mean" "" ""
printf "$fmt" operation squall tokio ratio squall tokio ratio
row() { # group label tokio-id
  local sm tm sa ta
  sm=$(estimate median "$1" squall); tm=$(estimate median "$1" "$3")
  sa=$(estimate mean "$1" squall); ta=$(estimate mean "$1" "$3")
  awk -v g="$2" -v sm="$sm" -v tm="$tm" -v sa="$sa" -v ta="$ta" '
    function r(s, t) { return (s == "-" || t == "-") ? "-" : sprintf("%.2f", s / t) }
    function n(x) { return x == "-" ? "-" : sprintf("%.1f", x) }
    BEGIN { printf "%-34s %9s %9s %8s   %9s %9s %8s\n", g, n(sm), n(tm), r(sm, tm), n(sa), n(ta), r(sa, ta) }'
}
row add_callback_one "callback, one per iteration" tokio
row add_callback_one "  (tokio: spawn+await)" tokio_spawn_await
row add_callback_batch1024 "callback, batches of 1024" tokio
row timeout_add_remove_1m "timeout add+remove, 1M pending" tokio
row remote_add_callback "cross-thread callback" tokio
row remote_add_callback "  (tokio: boxed closures)" tokio_boxed_fn
row remote_channel "cross-thread u64, typed channel" tokio
row future_set_result "future set_result + callback" tokio
row gen_step_pending_future "gen step, pending future" tokio
row gen_step_ready_future "gen step, ready future (squall)" -
row gen_step_ready_task "gen step, ready Task (squall)" -
row async_step_pending_future "async .await step, pending future" tokio
row async_step_ready_future "async .await, ready future (squall)" -
row async_wake_rc "wake: Future -> coroutine, Rc" -
row async_wake_std_local "wake: std Waker, loop thread" -
row async_wake_std_remote "wake: std Waker, other thread" tokio
row echo_64b_100conns "echo 64 B round trip, 100 conns" tokio
row echo_64b_100conns "  (mio: hand-written loop)" mio
echo "ratio = squall/tokio; tokio column: current_thread runtime (see bench/peers/benches/peers.rs)"
# Round trips per second, from the medians.
mps() { awk -v x="$1" 'BEGIN { if (x == "-") print "-"; else printf "%.0f", 1e9 / x }'; }
e=echo_64b_100conns
echo "echo messages/s (median): squall $(mps "$(estimate median $e squall)")," \
  "tokio $(mps "$(estimate median $e tokio)"), mio $(mps "$(estimate median $e mio)")"

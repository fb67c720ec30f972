#!/usr/bin/env bash
# Instructions per coroutine step and per wake, under callgrind: each
# workload of benches/gen.rs (and its tokio peer) runs N and then 2N times
# (bench/peers' gen_ir); the difference over N is the cost of one
# operation, start-up excluded. Steadier than bench/run.sh's wall-clock
# figures on a shared machine; the same workloads.
#
#   bench/gen_callgrind.sh                      # every operation, N=20000
#   N=5000 bench/gen_callgrind.sh async_wake_rc # some operations only
#
# Environment: N (20000), CARGO_TARGET_DIR / PEERS_TARGET_DIR (as in
# bench/http_callgrind.sh). Needs valgrind. A cross-thread operation counts
# both threads' instructions.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-20000}
command -v valgrind >/dev/null || { echo "valgrind not found (apt-get install valgrind)" >&2; exit 1; }

ops=("$@")
[ ${#ops[@]} -gt 0 ] || ops=(gen_step_pending_future async_step_pending_future tokio_pending_oneshot
  gen_step_ready_future async_step_ready_future async_wake_rc async_wake_std_local
  async_wake_std_remote tokio_oneshot_from_thread)

. "$root/bench/servers.sh"
(cd "$root/bench/peers" && CARGO_TARGET_DIR="$peers_target" cargo build -q --release --bin gen_ir)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

instructions() { # op count
  local out=$work/$1.$2.cg
  valgrind --tool=callgrind --callgrind-out-file="$out" "$peers_target/release/gen_ir" "$1" "$2" >"$work/log" 2>&1 ||
    { cat "$work/log" >&2; exit 1; }
  # One profile for the whole process: every thread's instructions.
  sed -n 's/^summary: //p; s/^totals: //p' "$out" | head -1 | awk '{print $1}'
}

printf '%-28s %14s %14s %8s\n' operation "Ir(N=$N)" "Ir(2N)" "Ir/op"
for op in "${ops[@]}"; do
  a=$(instructions "$op" "$N")
  b=$(instructions "$op" $((2 * N)))
  printf '%-28s %14s %14s %8.0f\n' "$op" "$a" "$b" "$(echo "($b - $a) / $N" | bc -l)"
done

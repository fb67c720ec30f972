#!/usr/bin/env bash
# Instructions per HTTP request, server by server, under callgrind: steadier
# than wall-clock figures on a shared machine. Each server runs twice under
# callgrind, answering N and then 2N keep-alive requests (bench/peers'
# http_load, 10 connections, one request at a time, or DEPTH pipelined); the
# difference over N is the per-request cost, start-up excluded.
#
#   bench/http_callgrind.sh                  # squall hyper mio, N=20000
#   N=5000 bench/http_callgrind.sh squall    # one server, a quicker look
#   bench/http_callgrind.sh actix may        # the framework peers (names: bench/servers.sh)
#   bench/http_callgrind.sh squall squallasync  # the same hello world as an async handler
#   KEEP=1 bench/http_callgrind.sh squall    # keep the 2N profile for callgrind_annotate
#                                            # or bench/cg_breakdown.py (per function, per line)
#
# Environment: N (20000), CONNS (10), DEPTH (1), PORT (18180), KEEP,
# CALLGRIND_ARGS (more valgrind options, e.g. --dump-instr=yes),
# CARGO_TARGET_DIR (honoured, as in bench/http.sh), PEERS_TARGET_DIR (the
# peers crate's, if elsewhere; see bench/servers.sh). Needs valgrind.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-20000}
CONNS=${CONNS:-10}
DEPTH=${DEPTH:-1}
PORT=${PORT:-18180}
export RUST_LOG=${RUST_LOG:-warn}
command -v valgrind >/dev/null || { echo "valgrind not found (apt-get install valgrind)" >&2; exit 1; }

servers=("$@")
[ ${#servers[@]} -gt 0 ] || servers=(squall hyper mio)

. "$root/bench/servers.sh"
(cd "$root" && cargo build -q --release --example hello_server --example hello_raw)
(cd "$root/bench/peers" && CARGO_TARGET_DIR="$peers_target" cargo build -q --release $(peer_bins "${servers[@]}") --bin http_load)

work=$(mktemp -d)
pid=
cleanup() { [ -z "$pid" ] || kill "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# Total instructions of one server run answering $2 requests.
instructions() { # name count
  local out=$work/$1.$2.cg
  valgrind --tool=callgrind ${CALLGRIND_ARGS:-} --callgrind-out-file="$out" $(server_cmd "$1" "$PORT") >"$work/log" 2>&1 &
  pid=$!
  local i
  for i in $(seq 300); do
    curl -sf -o /dev/null "http://127.0.0.1:$PORT/" 2>/dev/null && break
    sleep 0.1
  done
  "$peers_target/release/http_load" "127.0.0.1:$PORT" "$2" "$CONNS" "$DEPTH" >/dev/null
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  pid=
  [ -z "${KEEP:-}" ] || cp "$out" "$root/callgrind.$1.out"
  # The warm-up curl (up to a few) is in both runs, so it cancels out.
  sed -n 's/^summary: //p; s/^totals: //p' "$out" | head -1 | awk '{print $1}'
}

printf '%-8s %14s %14s %10s\n' server "Ir(N=$N)" "Ir(2N)" "Ir/request"
for s in "${servers[@]}"; do
  a=$(instructions "$s" "$N")
  b=$(instructions "$s" $((2 * N)))
  printf '%-8s %14s %14s %10.0f\n' "$s" "$a" "$b" "$(echo "($b - $a) / $N" | bc -l)"
done

#!/usr/bin/env bash
# The WebSocket headline (issue #22): echo servers, each alone on one core,
# loaded by bench/peers' ws_load (one thread, one mio loop) on the other core.
# Servers, all writing every message back on its connection:
# squall (bench/peers/src/bin/ws_echo_squall.rs: a WebSocketHandler routed
# with websocket::handler in a web::Application, no compression),
# tokio-tungstenite on a tokio current_thread runtime (ws_echo_tungstenite.rs,
# the shape of its echo-server example) and Python Tornado 6
# (bench/peers/ws_echo_tornado.py, a WebSocketHandler echo).
#
#   bench/websocket.sh                     # all three, RUNS=3 x 10 s per test: ~4 min
#   bench/websocket.sh squall tungstenite  # some servers only
#   D=2 RUNS=1 bench/websocket.sh          # a quick check of the script
#
# Tests, per server and run (after a handshake and one echo to check it):
# - echo: C connections (100), each a round trip after the other: a masked
#   SIZE-byte text message (64), then its echo, checked byte for byte.
# - bulk: BULK_C connections (4), the same with BULK_SIZE-byte binary
#   messages (1 MiB): message throughput, MB/s of payload echoed (10^6 bytes
#   per second, each message counted once).
# For each: round trips/s, latency p50/p99, the server's CPU time per
# message (user and system, from /proc/PID/stat at the start and end of the
# measured window, read by ws_load itself, so the warm-up and handshakes
# are not counted), and how busy each side's core was (ws_load's own CPU
# from getrusage: if it nears 100%, the load is the bottleneck, not the
# server). The table shows medians of RUNS runs, then squall's ratios.
# Targets (issue #22): echo round trips/s >= 1.2x tungstenite at equal or
# lower CPU per message, and >= 20x Tornado.
#
# Environment: D (s per measured window, 10; or DURATION), C (echo
# connections, 100; or CONNS), SIZE (64), BULK_C (4), BULK_SIZE (1048576),
# TESTS ("echo bulk"), RUNS (3), WARMUP (s, 1), SERVER_CPU (0), LOAD_CPU (1),
# PORT (first port, 18280), PRIO (a command the servers and the load run
# under: on a machine that others share, their jobs delay every round trip
# by milliseconds whatever the nice level, and PRIO="chrt -f 10" (real-time,
# needs root) measures the servers rather than the scheduler; the kernel
# still leaves other work 5% of both cores while it runs). CARGO_TARGET_DIR (and PEERS_TARGET_DIR) are
# honoured, as in bench/servers.sh.
# Needs: taskset, python3 with tornado 6 (else Tornado is skipped).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
D=${D:-${DURATION:-10}}
C=${C:-${CONNS:-100}}
SIZE=${SIZE:-64}
BULK_C=${BULK_C:-4}
BULK_SIZE=${BULK_SIZE:-1048576}
TESTS=${TESTS:-echo bulk}
RUNS=${RUNS:-3}
WARMUP=${WARMUP:-1}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PORT=${PORT:-18280}
PRIO=${PRIO:-}
# How the servers and the load are started: pinned, under PRIO if set.
read -r -a prio <<<"$PRIO"
# Quiet servers: a log on stderr would be measured too.
export RUST_LOG=${RUST_LOG:-warn}

all_servers=(squall tungstenite tornado)
servers=("$@")
[ ${#servers[@]} -gt 0 ] || servers=("${all_servers[@]}")
for s in "${servers[@]}"; do
  case " ${all_servers[*]} " in
    *" $s "*) ;;
    *) echo "unknown server '$s' (choose from: ${all_servers[*]})" >&2; exit 2 ;;
  esac
done
for t in $TESTS; do
  case $t in echo | bulk) ;; *) echo "unknown test '$t' (echo, bulk)" >&2; exit 2 ;; esac
done
command -v taskset >/dev/null || { echo "taskset not found (apt-get install util-linux)" >&2; exit 1; }

# Where the builds go (CARGO_TARGET_DIR, PEERS_TARGET_DIR).
. "$root/bench/servers.sh"

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((C + 64)) ]; then
  echo "open-file limit $(ulimit -n) is too low for C=$C: raise the hard limit (ulimit -Hn)" >&2
  exit 1
fi

want() { case " ${servers[*]} " in *" $1 "*) return 0 ;; esac; return 1; }
. "$root/bench/lib.sh"
echo "==> build"
bins="--bin ws_load"
want squall && bins+=" --bin ws_echo_squall"
want tungstenite && bins+=" --bin ws_echo_tungstenite"
(cd "$root/bench/peers" && CARGO_TARGET_DIR="$peers_target" cargo build --release $bins)
load_bin=$peers_target/release/ws_load
selected=()
want squall && selected+=(squall)
want tungstenite && selected+=(tungstenite)
if want tornado; then select_tornado; fi
[ ${#selected[@]} -gt 0 ] || { echo "no server left to measure" >&2; exit 1; }

# The command lines (bench/lib.sh's start_server runs them, under PRIO).
server_cmd() { # name port -> the command line
  case $1 in
    squall) echo "$peers_target/release/ws_echo_squall $2" ;;
    tungstenite) echo "$peers_target/release/ws_echo_tungstenite $2" ;;
    tornado) echo "python3 $root/bench/peers/ws_echo_tornado.py $2" ;;
  esac
}

scratch

# Up, upgrading, and echoing right: one connection for a moment.
probe_ws() { # name port
  "$load_bin" "127.0.0.1:$2" --conns 1 --seconds 0.2 --warmup 0 >/dev/null 2>"$work/probe"
}
server_prefix=("${prio[@]}")

# One ws_load run; appends a line to $work/NAME.TEST:
#   rps mbps p50_us p99_us user_us/msg sys_us/msg server_cpu% load_cpu%
measure() { # name port test
  local args out=$work/load.out
  case $3 in
    echo) args="--conns $C --size $SIZE" ;;
    bulk) args="--conns $BULK_C --size $BULK_SIZE --binary" ;;
  esac
  # Let the previous run's connections close.
  sleep 1
  if ! "${prio[@]}" taskset -c "$LOAD_CPU" "$load_bin" "127.0.0.1:$2" $args --seconds "$D" --warmup "$WARMUP" \
      --server-pid "$pid" >"$out" 2>"$work/load.err"; then
    echo "ws_load failed against $1 ($3):" >&2; cat "$out" "$work/load.err" "$work/$1.log" >&2; exit 1
  fi
  kill -0 "$pid" 2>/dev/null || { echo "$1 died during $3:" >&2; cat "$work/$1.log" >&2; exit 1; }
  sed -n 's/^WSLOAD //p' "$out" | tr ' ' '\n' | awk -F= '{ v[$1] = $2 } END {
    print v["rps"], v["mbps"], v["p50_us"], v["p99_us"], v["server_user_us"], v["server_sys_us"],
      v["server_cpu_pct"], v["client_cpu_pct"] }' >>"$work/$1.$3"
}

echo "==> run: servers on CPU $SERVER_CPU, ws_load on CPU $LOAD_CPU; $RUNS run(s) of ${D}s per test"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for run in $(seq "$RUNS"); do
  # Servers take turns within each run, so a busy spell on the shared
  # machine is spread over all of them rather than landing on one.
  for i in "${!selected[@]}"; do
    name=${selected[$i]}
    port=$((PORT + i))
    start_server "$name" "$port" probe_ws
    printf '    run %d/%d %-12s' "$run" "$RUNS" "$name"
    for t in $TESTS; do
      measure "$name" "$port" "$t"
      case $t in
        echo) printf ' echo: %s round trips/s' "$(tail -1 "$work/$name.$t" | cut -d' ' -f1)" ;;
        bulk) printf ' bulk: %s MB/s' "$(tail -1 "$work/$name.$t" | cut -d' ' -f2)" ;;
      esac
    done
    echo
    stop_server
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

for name in "${selected[@]}"; do
  medians "$name" "$TESTS" rps mbps p50 p99 usr sys scpu lcpu >"$work/$name.med"
done

echo
echo "WebSocket echo, one core per side: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs" \
  "($(lscpu | sed -n 's/^Model name: *//p' | head -1)), $(uname -r)"
echo "command: ${PRIO:+PRIO=\"$PRIO\" }D=$D C=$C SIZE=$SIZE BULK_C=$BULK_C BULK_SIZE=$BULK_SIZE RUNS=$RUNS bench/websocket.sh ${*:-}"
echo "load average before: $load_before, after: $load_after"
awk -v tests="$TESTS" -v servers="${selected[*]}" -v work="$work" -v c="$C" -v size="$SIZE" \
  -v bc="$BULK_C" -v bsize="$BULK_SIZE" '
  function get(s, key) { return ((s, key) in m) ? m[s, key] : "" }
  function cpu(s, t) { return get(s, t "_usr") + get(s, t "_sys") }
  function us(x) { return x >= 10 ? sprintf("%.0f", x) : sprintf("%.2f", x) }
  function ratio(a, b) { return (a == "" || b == "" || b + 0 == 0) ? "-" : sprintf("%.2f", a / b) }
  function target(what, r, op, goal) {
    if (r == "-") return
    # r is a string: compare it as a number.
    printf "- %s: %s, %s\n", what, r, ((op == "<=") ? (r + 0 <= goal) : (r + 0 >= goal)) ? "met" : "MISSED"
  }
  BEGIN {
    ntests = split(tests, T, " "); nserv = split(servers, S, " ")
    for (i = 1; i <= nserv; i++) {
      f = work "/" S[i] ".med"; getline line < f; close(f)
      nw = split(line, W, " ")
      for (j = 1; j <= nw; j++) { split(W[j], kv, "="); m[S[i], kv[1]] = kv[2] }
      has[S[i]] = 1
    }
    for (k = 1; k <= ntests; k++) {
      t = T[k]; print ""
      if (t == "echo") {
        print "Echo of " size "-byte text messages, " c " connections, one message in flight each:"
        print ""
        print "| server | round trips/s | p50 / p99 µs | server CPU µs/msg (user + sys) | server core % | load core % |"
        print "|---|---:|---:|---:|---:|---:|"
        for (i = 1; i <= nserv; i++) {
          s = S[i]
          printf "| %s | %d | %d / %d | %s (%s + %s) | %d | %d |\n", s, get(s, t "_rps"),
            get(s, t "_p50"), get(s, t "_p99"), us(cpu(s, t)), us(get(s, t "_usr")),
            us(get(s, t "_sys")), get(s, t "_scpu"), get(s, t "_lcpu")
        }
      } else {
        print "Echo of " bsize "-byte binary messages, " bc " connections, one message in flight each:"
        print ""
        print "| server | MB/s | messages/s | p50 / p99 ms | server CPU µs/msg (user + sys) | server core % | load core % |"
        print "|---|---:|---:|---:|---:|---:|---:|"
        for (i = 1; i <= nserv; i++) {
          s = S[i]
          printf "| %s | %.0f | %.0f | %.1f / %.1f | %s (%s + %s) | %d | %d |\n", s, get(s, t "_mbps"),
            get(s, t "_rps"), get(s, t "_p50") / 1000, get(s, t "_p99") / 1000, us(cpu(s, t)),
            us(get(s, t "_usr")), us(get(s, t "_sys")), get(s, t "_scpu"), get(s, t "_lcpu")
        }
      }
      if ("squall" in has) {
        for (i = 1; i <= nserv; i++) {
          p = S[i]; if (p == "squall") continue
          printf "| squall / %s | %s | | | %s | | |\n", p, ratio(get("squall", t "_rps"), get(p, t "_rps")),
            ratio(cpu("squall", t), cpu(p, t))
        }
      }
    }
    if ("squall" in has && (("tungstenite" in has) || ("tornado" in has))) {
      for (k = 1; k <= ntests; k++) if (T[k] == "echo") e = 1
      if (e) {
        print ""
        print "Targets (issue #22), squall / peer, echo:"
        if ("tungstenite" in has) {
          target("round trips/s >= 1.2x tungstenite", ratio(get("squall", "echo_rps"), get("tungstenite", "echo_rps")), ">=", 1.2)
          target("server CPU per message <= 1.0x tungstenite", ratio(cpu("squall", "echo"), cpu("tungstenite", "echo")), "<=", 1.0)
        }
        if ("tornado" in has)
          target("round trips/s >= 20x tornado", ratio(get("squall", "echo_rps"), get("tornado", "echo_rps")), ">=", 20)
      }
    }
  }'
echo
echo "Medians of $RUNS run(s), ${D}s each after ${WARMUP}s of warm-up. Ratios: squall / peer (round trips/s:"
echo "higher is better for squall; CPU per message: lower is better). CPU per message is the server's"
echo "utime+stime over the measured window (/proc/PID/stat, $(getconf CLK_TCK) ticks/s) over the messages echoed in it."
echo "When the load's core nears 100%, round trips/s measures ws_load, not the server: then compare CPU per message."

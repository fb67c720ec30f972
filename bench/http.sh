#!/usr/bin/env bash
# The HTTP headline: hello-world servers, each alone on one core, loaded by
# wrk (one thread) on the other core. Servers: squall (examples/hello_server.rs),
# squallraw (examples/hello_raw.rs: the protocol layer alone, no web),
# squallasync (hello_server --async: the handler an async block),
# hyper 1.x on a tokio current_thread runtime, actix-web 4 with one worker,
# may_minihttp with one may worker (TechEmpower's plaintext family), a
# hand-written mio loop (the practical limit of one core) and Python
# Tornado 6 (bench/peers/); then
# squall2 / squall2rp: squall in 2 processes (hello_server --processes 2, a
# shared socket / one SO_REUSEPORT socket each), on both cores, sharing them
# with wrk; their CPU per request sums the children.
#
#   bench/http.sh                          # all of them, RUNS=3 x 10 s each: ~14 min
#   bench/http.sh mio hyper                # some servers only
#   DURATION=2 RUNS=1 bench/http.sh        # a quick check of the script
#
# Per server and run: req/s and p50/p99 latency at -c 100 and -c 1000,
# req/s with HTTP/1.1 pipelining (PIPELINE requests per write, at -c 100),
# the server's CPU time per request (user and system separately, from
# /proc/PID/stat before and after each wrk run, over the requests wrk
# counted) and how busy each side's core was. The table shows medians of
# RUNS runs, then squall's ratio to each peer.
#
# Environment: DURATION (s per wrk run, 10), RUNS (3), WARMUP (s, 1),
# CONNS ("100 1000"), PIPELINE (16), SERVER_CPU (1), WRK_CPU (0),
# PORT (first port, 18080), WRK_TIMEOUT (s, 5), SQUALL_CARGO_ARGS (extra args for building
# squall's example, e.g. "--features http"). CARGO_TARGET_DIR is honoured.
# Needs: wrk, taskset, curl, python3 with tornado (else Tornado is skipped).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-10}
RUNS=${RUNS:-3}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-100 1000}
PIPELINE=${PIPELINE:-16}
SERVER_CPU=${SERVER_CPU:-1}
WRK_CPU=${WRK_CPU:-0}
PORT=${PORT:-18080}
# wrk's default of 2 s would count Tornado's slowest answers at -c 1000 as errors.
WRK_TIMEOUT=${WRK_TIMEOUT:-5}
SQUALL_CARGO_ARGS=${SQUALL_CARGO_ARGS:-}
# Quiet servers: an access log on stderr would be measured too.
export RUST_LOG=${RUST_LOG:-warn}

all_servers=(squall squallraw squallasync hyper actix may mio tornado squall2 squall2rp)
servers=("$@")
[ ${#servers[@]} -gt 0 ] || servers=("${all_servers[@]}")
for s in "${servers[@]}"; do
  case " ${all_servers[*]} " in
    *" $s "*) ;;
    *) echo "unknown server '$s' (choose from: ${all_servers[*]})" >&2; exit 2 ;;
  esac
done
for tool in wrk taskset curl; do
  command -v "$tool" >/dev/null || { echo "$tool not found (apt-get install wrk util-linux curl)" >&2; exit 1; }
done

. "$root/bench/servers.sh"
. "$root/bench/lib.sh"

# -c 1000 needs 1000 sockets on each side, plus the server's own.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
max_conns=$(printf '%s\n' $CONNS 100 | sort -n | tail -1)
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((max_conns + 64)) ]; then
  echo "open-file limit $(ulimit -n) is too low for -c $max_conns: raise the hard limit (ulimit -Hn)" >&2
  exit 1
fi

echo "==> build"
selected=()
want() { case " ${servers[*]} " in *" $1 "*) return 0 ;; esac; return 1; }
if want squall || want squallraw || want squallasync || want squall2 || want squall2rp; then
  if [ -f "$root/examples/hello_server.rs" ]; then
    (cd "$root" && cargo build --release --example hello_server --example hello_raw $SQUALL_CARGO_ARGS)
    want squall && selected+=(squall)
    want squallraw && selected+=(squallraw)
    want squallasync && selected+=(squallasync)
    want squall2 && selected+=(squall2)
    want squall2rp && selected+=(squall2rp)
  else
    echo "squall: SKIPPED: examples/hello_server.rs is not in this tree yet (squall's HTTP server, issue #6)"
  fi
fi
peers=$(peer_bins "${servers[@]}")
if [ -n "$peers" ]; then
  (cd "$root/bench/peers" && CARGO_TARGET_DIR="$peers_target" cargo build --release $peers)
  for s in hyper actix may mio; do want $s && selected+=($s); done
fi
if want tornado; then select_tornado; fi
[ ${#selected[@]} -gt 0 ] || { echo "no server left to measure" >&2; exit 1; }

scratch

tck=$(getconf CLK_TCK)
# utime and stime, in clock ticks: fields 14 and 15 of /proc/PID/stat, counted
# after the ")" that ends the command name (which may hold spaces).
# A multi-process server: the parent (a supervisor, idle) and its children.
cpu_ticks() {
  local p
  for p in "$1" $(pgrep -P "$1"); do sed 's/.*) //' "/proc/$p/stat"; done |
    awk '{ u += $12; s += $13 } END { print u, s }'
}

# One wrk run; appends a line to $work/NAME.TEST:
#   req/s p50_ms p99_ms user_us/req sys_us/req bytes/resp server_cpu% wrk_cpu% errors
measure() { # name port test conns pipeline-depth
  local before after out=$work/wrk.out t=$work/wrk.time
  # Let the previous run's connections close and a slow server catch up.
  sleep 1
  before=$(cpu_ticks "$pid")
  { TIMEFORMAT='%U %S'; time WRK_PIPELINE=$5 taskset -c "$WRK_CPU" wrk -t1 -c"$4" -d"${DURATION}s" --timeout "${WRK_TIMEOUT}s" \
      -s "$root/bench/http.lua" "http://127.0.0.1:$2/" >"$out"; } 2>"$t"
  after=$(cpu_ticks "$pid")
  kill -0 "$pid" 2>/dev/null || { echo "$1 died during $3:" >&2; cat "$work/$1.log" >&2; exit 1; }
  grep -q '^WRK ' "$out" || { echo "wrk gave no summary:" >&2; cat "$out" >&2; exit 1; }
  sed -n 's/^WRK //p' "$out" | tr ' ' '\n' | awk -F= -v before="$before" -v after="$after" \
    -v tck="$tck" -v wrkcpu="$(tail -1 "$t")" '
    { v[$1] = $2 }
    END {
      split(before, b, " "); split(after, a, " "); split(wrkcpu, w, " ")
      n = v["requests"]; secs = v["duration_us"] / 1e6
      err = v["connect_errors"] + v["read_errors"] + v["write_errors"] + v["status_errors"] + v["timeouts"]
      if (err > 0)
        err = sprintf("connect:%d,read:%d,write:%d,status:%d,timeout:%d", v["connect_errors"],
          v["read_errors"], v["write_errors"], v["status_errors"], v["timeouts"])
      if (n == 0) { print "0 0 0 0 0 0 0 0 " err; exit }
      printf "%.0f %.3f %.3f %.4f %.4f %.0f %.0f %.0f %s\n", n / secs,
        v["p50_us"] / 1000, v["p99_us"] / 1000,
        (a[1] - b[1]) / tck * 1e6 / n, (a[2] - b[2]) / tck * 1e6 / n,
        v["bytes"] / n, 100 * (a[1] + a[2] - b[1] - b[2]) / tck / secs,
        100 * (w[1] + w[2]) / secs, err
    }' >>"$work/$1.$3"
}

tests=()
for c in $CONNS; do tests+=("c$c"); done
tests+=(pipe)

echo "==> run: servers on CPU $SERVER_CPU, wrk -t1 on CPU $WRK_CPU; $RUNS run(s) of ${DURATION}s per test"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for run in $(seq "$RUNS"); do
  # Servers take turns within each run, so a busy spell on the shared
  # machine is spread over all of them rather than landing on one.
  for i in "${!selected[@]}"; do
    name=${selected[$i]}
    port=$((PORT + i))
    start_server "$name" "$port"
    if [ "$WARMUP" != 0 ]; then
      taskset -c "$WRK_CPU" wrk -t1 -c100 -d"${WARMUP}s" "http://127.0.0.1:$port/" >/dev/null
    fi
    printf '    run %d/%d %-8s' "$run" "$RUNS" "$name"
    for c in $CONNS; do
      measure "$name" "$port" "c$c" "$c" 1
      printf ' c%s: %s req/s' "$c" "$(tail -1 "$work/$name.c$c" | cut -d' ' -f1)"
    done
    measure "$name" "$port" pipe 100 "$PIPELINE"
    printf ', pipelined: %s req/s\n' "$(tail -1 "$work/$name.pipe" | cut -d' ' -f1)"
    stop_server
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

for name in "${selected[@]}"; do medians "$name" "${tests[*]}" rps p50 p99 usr sys bytes scpu wcpu >"$work/$name.med"; done

echo
echo "HTTP hello world, one core per side: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs" \
  "($(lscpu | sed -n 's/^Model name: *//p' | head -1)), $(uname -r)"
echo "command: DURATION=$DURATION RUNS=$RUNS CONNS=\"$CONNS\" PIPELINE=$PIPELINE bench/http.sh ${*:-}"
echo "load average before: $load_before, after: $load_after"
echo
awk -v tests="${tests[*]}" -v servers="${selected[*]}" -v work="$work" -v depth="$PIPELINE" '
  function get(s, key) { return ((s, key) in m) ? m[s, key] : "" }
  BEGIN {
    ntests = split(tests, T, " "); nserv = split(servers, S, " ")
    for (i = 1; i <= nserv; i++) {
      f = work "/" S[i] ".med"; getline line < f; close(f)
      nw = split(line, W, " ")
      for (j = 1; j <= nw; j++) { split(W[j], kv, "="); m[S[i], kv[1]] = kv[2] }
      has[S[i]] = 1
    }
    # Columns: req/s and p50/p99 per connection count, pipelined req/s,
    # CPU per request (user, sys) per test, bytes per response.
    hdr = "| server"; sep = "|---"
    for (t = 1; t <= ntests; t++) {
      x = T[t]
      if (x == "pipe") { hdr = hdr " | req/s pipelined x" depth; sep = sep "|---:" }
      else { c = substr(x, 2); hdr = hdr " | req/s -c " c " | p50 / p99 ms -c " c; sep = sep "|---:|---:" }
    }
    for (t = 1; t <= ntests; t++) {
      x = T[t]; lbl = (x == "pipe") ? "pipelined" : "-c " substr(x, 2)
      hdr = hdr " | user / sys µs/req " lbl; sep = sep "|---:"
    }
    hdr = hdr " | bytes/resp |"; sep = sep "|---:|"
    print hdr; print sep
    for (i = 1; i <= nserv; i++) {
      s = S[i]; row = "| " s
      for (t = 1; t <= ntests; t++) {
        x = T[t]
        row = row sprintf(" | %d", get(s, x "_rps"))
        if (x != "pipe") row = row sprintf(" | %.2f / %.2f", get(s, x "_p50"), get(s, x "_p99"))
      }
      for (t = 1; t <= ntests; t++) {
        x = T[t]
        row = row sprintf(" | %s / %s", us(get(s, x "_usr")), us(get(s, x "_sys")))
      }
      print row sprintf(" | %d |", get(s, T[1] "_bytes"))
    }
    if ("squall" in has) {
      for (i = 1; i <= nserv; i++) {
        p = S[i]; if (p == "squall") continue
        row = "| squall / " p
        for (t = 1; t <= ntests; t++) {
          x = T[t]
          row = row " | " ratio(get("squall", x "_rps"), get(p, x "_rps"))
          if (x != "pipe") row = row " | " ratio(get("squall", x "_p50"), get(p, x "_p50")) " / " ratio(get("squall", x "_p99"), get(p, x "_p99"))
        }
        for (t = 1; t <= ntests; t++) {
          x = T[t]
          row = row " | " ratio(get("squall", x "_usr"), get(p, x "_usr")) " / " ratio(get("squall", x "_sys"), get(p, x "_sys"))
        }
        print row " | |"
      }
    }
    print ""
    print "Core use, % of one core (server / wrk):"
    for (i = 1; i <= nserv; i++) {
      s = S[i]; printf "- %s:", s
      for (t = 1; t <= ntests; t++) {
        x = T[t]; lbl = (x == "pipe") ? "pipelined" : "-c " substr(x, 2)
        printf "%s %s %d/%d", (t > 1 ? "," : ""), lbl, get(s, x "_scpu"), get(s, x "_wcpu")
      }
      print ""
    }
    # The targets of issue #6, from the medians above.
    if ("squall" in has) {
      print ""
      print "Targets (issue #6), squall / peer:"
      first = T[1]; lbl1 = "-c " substr(first, 2)
      if ("hyper" in has) {
        target("user CPU per request at " lbl1 " <= 0.8x hyper", "squall", "hyper", first "_usr", "<=", 0.8)
        for (t = 1; t <= ntests; t++) {
          x = T[t]
          if (x == "pipe") target("pipelined req/s >= 1.2x hyper", "squall", "hyper", "pipe_rps", ">=", 1.2)
          else target("req/s at -c " substr(x, 2) " >= 1.0x hyper", "squall", "hyper", x "_rps", ">=", 1.0)
        }
      }
      if ("mio" in has)
        target("user CPU per request at " lbl1 " <= 1.6x mio", "squall", "mio", first "_usr", "<=", 1.6)
      if ("tornado" in has)
        for (t = 1; t <= ntests; t++)
          target("req/s " (T[t] == "pipe" ? "pipelined" : "at -c " substr(T[t], 2)) " >= 20x tornado", "squall", "tornado", T[t] "_rps", ">=", 20)
    }
  }
  function target(what, a, b, key, op, goal,   r, ok) {
    if (get(a, key) == "" || get(b, key) + 0 == 0) return
    r = get(a, key) / get(b, key)
    ok = (op == "<=") ? (r <= goal) : (r >= goal)
    printf "- %s: %.2f, %s\n", what, r, ok ? "met" : "MISSED"
  }
  function us(x) { return x >= 10 ? sprintf("%.0f", x) : sprintf("%.2f", x) }
  function ratio(a, b) { return (a == "" || b == "" || b + 0 == 0) ? "-" : sprintf("%.2f", a / b) }
'
# wrk's socket errors and non-2xx answers, run by run (none: no line).
for name in "${selected[@]}"; do
  for t in "${tests[@]}"; do
    errs=$(cut -d' ' -f9 "$work/$name.$t" | grep -v '^0$' | paste -sd' ' || true)
    [ -z "$errs" ] || echo "wrk errors, $name $t: $errs"
  done
done
echo
echo "Medians of $RUNS run(s), ${DURATION}s each. Ratios: squall / peer (req/s: higher is better for squall;"
echo "latency and CPU per request: lower is better). CPU per request is the server's utime/stime over"
echo "the requests wrk counted ($tck ticks/s). When wrk's core is at ~100%, req/s measures wrk, not the server:"
echo "then compare CPU per request."

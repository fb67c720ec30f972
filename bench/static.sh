#!/usr/bin/env bash
# Static files: a small (1 KiB) file fetched by wrk (one thread, -c 50) from
# squall (examples/static_server.rs: the `static_path` setting), nginx (one
# worker process, sendfile on, no access log) and Python Tornado 6's
# StaticFileHandler (bench/peers/static_tornado.py), each alone on one core,
# wrk on the other. Cases: a plain GET (200 with the body), an
# If-None-Match hit (304: the server's own ETag, asked once with curl) and
# an If-None-Match miss (200: a stale ETag).
#
#   bench/static.sh                     # all of them, RUNS=3 x 10 s each: ~5 min
#   bench/static.sh squall nginx        # some servers only
#   DURATION=2 RUNS=1 bench/static.sh   # a quick check of the script
#
# Per server, case and run: req/s, p50/p99 latency, and the server's CPU
# time per request (user + system, from /proc/PID/stat before and after each
# wrk run, nginx's master and worker summed). The table shows medians of RUNS
# runs, then squall's ratio to each peer, and the targets of issue #23
# (>= 0.8x nginx, >= 20x Tornado, in req/s).
#
# Environment: DURATION (s per wrk run, 10), RUNS (3), WARMUP (s, 1), CONNS
# (50), SERVER_CPU (0), WRK_CPU (1), PORT (first port, 18180), SIZE (bytes of
# the file, 1024). CARGO_TARGET_DIR is honoured.
# Needs: wrk, taskset, curl, nginx, python3 with tornado (else Tornado is skipped).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-10}
RUNS=${RUNS:-3}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-50}
SERVER_CPU=${SERVER_CPU:-0}
WRK_CPU=${WRK_CPU:-1}
PORT=${PORT:-18180}
SIZE=${SIZE:-1024}
export RUST_LOG=${RUST_LOG:-warn}

all_servers=(squall nginx tornado)
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
want() { case " ${servers[*]} " in *" $1 "*) return 0 ;; esac; return 1; }
. "$root/bench/lib.sh"

echo "==> build"
squall_target=${CARGO_TARGET_DIR:-$root/target}
selected=()
if want squall; then
  (cd "$root" && cargo build --release --features static --example static_server)
  selected+=(squall)
fi
nginx_bin=$(command -v nginx || ls /usr/sbin/nginx 2>/dev/null || true)
if want nginx; then
  if [ -n "$nginx_bin" ]; then selected+=(nginx); else echo "nginx: SKIPPED: not found (apt-get install nginx)"; fi
fi
if want tornado; then select_tornado; fi
[ ${#selected[@]} -gt 0 ] || { echo "no server left to measure" >&2; exit 1; }

scratch

# The served directory: one file of SIZE bytes of text, served under
# /static/ by every server.
mkdir -p "$work/files/static"
head -c "$SIZE" /dev/zero | tr '\0' 'x' >"$work/files/static/small.txt"
# nginx's worker runs as nobody when started as root: let it read them.
chmod a+rx "$work" "$work/files" "$work/files/static"
chmod a+r "$work/files/static/small.txt"

# nginx: one worker; sendfile, as nginx is usually run; ETags and
# If-None-Match on (its defaults); no access log; a large keepalive_requests.
nginx_conf() { # port
  mkdir -p "$work/nginx"
  cat >"$work/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  keepalive_requests 1000000;
  default_type application/octet-stream;
  types { text/plain txt; }
  client_body_temp_path $work/nginx; proxy_temp_path $work/nginx;
  fastcgi_temp_path $work/nginx; uwsgi_temp_path $work/nginx; scgi_temp_path $work/nginx;
  server {
    listen 127.0.0.1:$1 backlog=1024;
    root $work/files;
  }
}
EOF
}

server_cmd() { # name port -> the command line
  case $1 in
    squall) echo "$squall_target/release/examples/static_server $work/files/static $2" ;;
    nginx) nginx_conf "$2"; echo "$nginx_bin -c $work/nginx/nginx.conf -p $work/nginx/" ;;
    tornado) echo "python3 $root/bench/peers/static_tornado.py $work/files/static $2" ;;
  esac
}

tck=$(getconf CLK_TCK)
# utime and stime of a process and its children (nginx's master and worker).
cpu_ticks() {
  local p
  for p in "$1" $(pgrep -P "$1"); do sed 's/.*) //' "/proc/$p/stat"; done |
    awk '{ u += $12; s += $13 } END { print u, s }'
}

# The server is up when it serves the file, byte for byte.
probe_file() { # name port
  curl -sf -o "$work/body" "http://127.0.0.1:$2/static/small.txt" 2>/dev/null || return 1
  if ! cmp -s "$work/body" "$work/files/static/small.txt"; then
    echo "$1 answered something other than the file" >&2; exit 1
  fi
}

# One wrk run; appends "req/s p50_ms p99_ms cpu_us/req errors" to $work/NAME.CASE.
measure() { # name port case [header]
  local before after out=$work/wrk.out
  sleep 1
  before=$(cpu_ticks "$pid")
  if [ $# -ge 4 ]; then
    taskset -c "$WRK_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" -H "$4" \
      -s "$root/bench/http.lua" "http://127.0.0.1:$2/static/small.txt" >"$out"
  else
    taskset -c "$WRK_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" \
      -s "$root/bench/http.lua" "http://127.0.0.1:$2/static/small.txt" >"$out"
  fi
  after=$(cpu_ticks "$pid")
  kill -0 "$pid" 2>/dev/null || { echo "$1 died during $3:" >&2; cat "$work/$1.log" >&2; exit 1; }
  grep -q '^WRK ' "$out" || { echo "wrk gave no summary:" >&2; cat "$out" >&2; exit 1; }
  sed -n 's/^WRK //p' "$out" | tr ' ' '\n' | awk -F= -v before="$before" -v after="$after" -v tck="$tck" '
    { v[$1] = $2 }
    END {
      split(before, b, " "); split(after, a, " ")
      n = v["requests"]; secs = v["duration_us"] / 1e6
      err = v["connect_errors"] + v["read_errors"] + v["write_errors"] + v["timeouts"]
      if (n == 0) { print "0 0 0 0 " err; exit }
      printf "%.0f %.3f %.3f %.2f %d\n", n / secs, v["p50_us"] / 1000, v["p99_us"] / 1000,
        (a[1] + a[2] - b[1] - b[2]) / tck * 1e6 / n, err
    }' >>"$work/$1.$3"
}

# The status a server gives a request with header $2 (to check each case).
status_with() { # port header
  curl -s -o /dev/null -w '%{http_code}' -H "$2" "http://127.0.0.1:$1/static/small.txt"
}

cases=(get hit miss)
echo "==> run: servers on CPU $SERVER_CPU, wrk -t1 -c$CONNS on CPU $WRK_CPU; $RUNS run(s) of ${DURATION}s per case"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for run in $(seq "$RUNS"); do
  for i in "${!selected[@]}"; do
    name=${selected[$i]}
    port=$((PORT + i))
    start_server "$name" "$port" probe_file
    etag=$(curl -sI "http://127.0.0.1:$port/static/small.txt" | tr -d '\r' | sed -n 's/^[Ee][Tt][Aa][Gg]: //p')
    [ -n "$etag" ] || { echo "$name sent no ETag" >&2; exit 1; }
    hit=$(status_with "$port" "If-None-Match: $etag")
    miss=$(status_with "$port" 'If-None-Match: "stale"')
    [ "$hit" = 304 ] && [ "$miss" = 200 ] || { echo "$name: If-None-Match hit $hit, miss $miss (want 304, 200)" >&2; exit 1; }
    if [ "$WARMUP" != 0 ]; then
      taskset -c "$WRK_CPU" wrk -t1 -c"$CONNS" -d"${WARMUP}s" "http://127.0.0.1:$port/static/small.txt" >/dev/null
    fi
    printf '    run %d/%d %-8s' "$run" "$RUNS" "$name"
    measure "$name" "$port" get
    measure "$name" "$port" hit "If-None-Match: $etag"
    measure "$name" "$port" miss 'If-None-Match: "stale"'
    for c in "${cases[@]}"; do printf ' %s: %s req/s' "$c" "$(tail -1 "$work/$name.$c" | cut -d' ' -f1)"; done
    echo
    stop_server
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

echo
echo "Static file ($SIZE bytes), one core per side: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs" \
  "($(lscpu | sed -n 's/^Model name: *//p' | head -1)), $(uname -r)"
echo "command: DURATION=$DURATION RUNS=$RUNS CONNS=$CONNS SIZE=$SIZE bench/static.sh ${*:-}"
[ -n "$nginx_bin" ] && echo "nginx: $("$nginx_bin" -v 2>&1 | sed 's/.*: //'); wrk: $(wrk -v 2>&1 | head -1 | cut -d' ' -f2)"
echo "load average before: $load_before, after: $load_after"
echo
echo "| server | GET req/s | p50 / p99 ms | CPU µs/req | If-None-Match hit (304) req/s | p50 / p99 ms | CPU µs/req | If-None-Match miss (200) req/s | p50 / p99 ms | CPU µs/req |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for name in "${selected[@]}"; do
  row="| $name"
  for c in "${cases[@]}"; do
    f=$work/$name.$c
    row="$row | $(median "$f" 1) | $(median "$f" 2) / $(median "$f" 3) | $(median "$f" 4)"
    eval "rps_${name}_$c=$(median "$f" 1)"
    eval "cpu_${name}_$c=$(median "$f" 4)"
  done
  echo "$row |"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }
if want squall; then
  for p in nginx tornado; do
    case " ${selected[*]} " in *" $p "*) ;; *) continue ;; esac
    row="| squall / $p"
    for c in "${cases[@]}"; do
      a=rps_squall_$c; b=rps_${p}_$c; ca=cpu_squall_$c; cb=cpu_${p}_$c
      row="$row | $(ratio "${!a}" "${!b}") | | $(ratio "${!ca}" "${!cb}")"
    done
    echo "$row |"
  done
  echo
  echo "Targets (issue #23), squall / peer req/s:"
  for c in "${cases[@]}"; do
    a=rps_squall_$c
    for pair in nginx:0.8 tornado:20; do
      p=${pair%%:*}; goal=${pair#*:}
      case " ${selected[*]} " in *" $p "*) ;; *) continue ;; esac
      b=rps_${p}_$c
      r=$(ratio "${!a}" "${!b}")
      ok=$(awk -v r="$r" -v g="$goal" 'BEGIN { print (r + 0 >= g) ? "met" : "MISSED" }')
      echo "- $c: >= ${goal}x $p: $r, $ok"
    done
  done
  # On a busy machine req/s is shared out by the scheduler; the capacity
  # (1 / CPU per request) is what each server would do with a core alone.
  echo "Capacity (1 / CPU per request), squall / peer:"
  for c in "${cases[@]}"; do
    a=cpu_squall_$c
    for pair in nginx:0.8 tornado:20; do
      p=${pair%%:*}; goal=${pair#*:}
      case " ${selected[*]} " in *" $p "*) ;; *) continue ;; esac
      b=cpu_${p}_$c
      r=$(ratio "${!b}" "${!a}")
      ok=$(awk -v r="$r" -v g="$goal" 'BEGIN { print (r + 0 >= g) ? "met" : "MISSED" }')
      echo "- $c: >= ${goal}x $p: $r, $ok"
    done
  done
fi
for name in "${selected[@]}"; do
  for c in "${cases[@]}"; do
    errs=$(cut -d' ' -f5 "$work/$name.$c" | grep -v '^0$' | paste -sd' ' || true)
    [ -z "$errs" ] || echo "wrk socket errors, $name $c: $errs"
  done
done
echo
echo "Medians of $RUNS run(s), ${DURATION}s each; CPU per request is the server's user + system time"
echo "over the requests wrk counted. When wrk's core is saturated, req/s measures wrk: compare CPU per request."

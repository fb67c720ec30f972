#!/usr/bin/env bash
# The HTTPS headline: bench/http.sh's method over TLS. Hello-world servers,
# each alone on one core, loaded by wrk (one thread) on the other core:
# squall (examples/https_server.rs), hyper 1.x + tokio-rustls on a tokio
# current_thread runtime (bench/peers/src/bin/hello_hyper_tls.rs; rustls
# 0.23 on ring, as squall) and nginx (one worker process, OpenSSL). All
# three serve "Hello, world (over TLS)" with one ECDSA P-256 certificate for
# localhost, made with openssl for this run, over TLS 1.3.
#
#   bench/https.sh                          # all three, RUNS=3 x 10 s per test: ~6 min
#   bench/https.sh squall hyper             # some servers only
#   DURATION=2 RUNS=1 bench/https.sh        # a quick check of the script
#
# Tests, per server and run:
# - c100 (one per CONNS): keep-alive, wrk -c N: TLS records on long-lived
#   connections (one handshake per connection, at the start).
# - close: `Connection: close`, so every request is a new TCP and TLS
#   connection. wrk reuses each connection's OpenSSL object (SSL_clear keeps
#   the session), so it offers the last session ticket: where the server
#   accepts it (all three do by default: rustls's stateful tickets, nginx's
#   stateless ones), the handshake is a TLS 1.3 PSK resumption (ECDHE, no
#   certificate, no signature).
# - full: the same with wrk under an LD_PRELOAD shim (built here) that
#   drops the session after SSL_clear: every connection is a full
#   handshake (ECDHE + the server's ECDSA signature).
# Handshake tests run at HS_CONNS connections (100). For each: req/s,
# p99 latency, the server's CPU time per request (user and system,
# from /proc/PID/stat before and after each wrk run, over the requests wrk
# counted), how busy each side's core was, and for close/full the TCP
# connections accepted per request (PassiveOpens of /proc/net/snmp: 1.00 when
# no connection is reused; the whole host's count, so other loopback traffic
# inflates it). Before the runs, openssl s_client reports what each server
# negotiates (version, cipher, group) and whether it resumes a session.
# Targets (issue #21): keep-alive CPU per request <= 0.8x hyper (user CPU,
# as bench/http.sh's target, and user+sys); new connections per second
# >= 1.0x hyper and >= 0.8x nginx, with the capacity (1 / CPU per new
# connection) beside it, as wrk's core, doing the client's half of each
# handshake, is usually the busier one.
#
# Environment: DURATION (s per wrk run, 10), RUNS (3), WARMUP (s, 1),
# CONNS ("100"), HS_CONNS (100), TESTS ("keepalive close full"),
# SERVER_CPU (1), WRK_CPU (0), PORT (first port, 18443), WRK_TIMEOUT (s, 5),
# SQUALL_CARGO_ARGS. CARGO_TARGET_DIR is honoured.
# Needs: wrk (built with OpenSSL), nginx, openssl, cc, taskset, curl.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-10}
RUNS=${RUNS:-3}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-100}
HS_CONNS=${HS_CONNS:-100}
TESTS=${TESTS:-keepalive close full}
SERVER_CPU=${SERVER_CPU:-1}
WRK_CPU=${WRK_CPU:-0}
PORT=${PORT:-18443}
WRK_TIMEOUT=${WRK_TIMEOUT:-5}
SQUALL_CARGO_ARGS=${SQUALL_CARGO_ARGS:-}
export RUST_LOG=${RUST_LOG:-warn}

all_servers=(squall hyper nginx)
servers=("$@")
[ ${#servers[@]} -gt 0 ] || servers=("${all_servers[@]}")
for s in "${servers[@]}"; do
  case " ${all_servers[*]} " in
    *" $s "*) ;;
    *) echo "unknown server '$s' (choose from: ${all_servers[*]})" >&2; exit 2 ;;
  esac
done
for tool in wrk taskset curl openssl cc; do
  command -v "$tool" >/dev/null || { echo "$tool not found" >&2; exit 1; }
done
want() { case " ${servers[*]} " in *" $1 "*) return 0 ;; esac; return 1; }
nginx_bin=$(command -v nginx || ls /usr/sbin/nginx 2>/dev/null || true)
if want nginx && [ -z "$nginx_bin" ]; then
  echo "nginx not found (apt-get install nginx)" >&2; exit 1
fi

. "$root/bench/servers.sh"

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

. "$root/bench/lib.sh"
scratch

echo "==> build"
selected=()
if want squall; then
  if [ -f "$root/examples/https_server.rs" ]; then
    (cd "$root" && cargo build --release --example https_server $SQUALL_CARGO_ARGS)
    selected+=(squall)
  else
    echo "squall: SKIPPED: examples/https_server.rs is not in this tree"
  fi
fi
if want hyper; then
  (cd "$root/bench/peers" && CARGO_TARGET_DIR="$peers_target" cargo build --release --bin hello_hyper_tls)
  selected+=(hyper)
fi
want nginx && selected+=(nginx)
[ ${#selected[@]} -gt 0 ] || { echo "no server left to measure" >&2; exit 1; }

# One certificate and key for all: ECDSA P-256, self-signed, for localhost.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null

# wrk without session resumption (the "full" test): wrk reuses a
# connection's SSL object across reconnections (SSL_shutdown, SSL_clear,
# SSL_connect) and SSL_clear keeps its session; drop it there.
cat >"$work/noresume.c" <<'EOF'
#define _GNU_SOURCE
#include <dlfcn.h>
typedef struct ssl_st SSL;
int SSL_clear(SSL *s) {
    static int (*real)(SSL *);
    static int (*set_session)(SSL *, void *);
    if (!real) {
        real = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_clear");
        set_session = (int (*)(SSL *, void *))dlsym(RTLD_NEXT, "SSL_set_session");
    }
    int r = real(s);
    set_session(s, 0);
    return r;
}
EOF
cc -O2 -shared -fPIC -o "$work/noresume.so" "$work/noresume.c" -ldl

# nginx: one worker, TLS 1.3 only, X25519 (what rustls and wrk's OpenSSL
# agree on by default), defaults otherwise (session tickets on, as rustls's
# resumption is), no access log, a large keepalive_requests.
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
  keepalive_requests 100000;
  client_body_temp_path $work/nginx; proxy_temp_path $work/nginx;
  fastcgi_temp_path $work/nginx; uwsgi_temp_path $work/nginx; scgi_temp_path $work/nginx;
  server {
    listen 127.0.0.1:$1 ssl;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    ssl_protocols TLSv1.3;
    ssl_ecdh_curve X25519;
    location / { default_type text/plain; return 200 "Hello, world (over TLS)"; }
  }
}
EOF
}

# The command lines (bench/lib.sh's start_server runs them; this replaces
# bench/servers.sh's hello-world ones).
server_cmd() { # name port -> the command line
  case $1 in
    squall) echo "$squall_target/release/examples/https_server $work/cert.pem $work/key.pem $2" ;;
    hyper) echo "$peers_target/release/hello_hyper_tls $work/cert.pem $work/key.pem $2" ;;
    nginx) nginx_conf "$2"; echo "$nginx_bin -c $work/nginx/nginx.conf -p $work/nginx/" ;;
  esac
}

tck=$(getconf CLK_TCK)
# utime and stime of a process and its children (nginx's master and worker).
cpu_ticks() {
  local p
  for p in "$1" $(pgrep -P "$1"); do sed 's/.*) //' "/proc/$p/stat"; done |
    awk '{ u += $12; s += $13 } END { print u, s }'
}
passive_opens() { awk '/^Tcp:/ { if (h) print $7; h = 1 }' /proc/net/snmp; }

# What a server negotiates with OpenSSL's client defaults (wrk's), and
# whether it resumes: one connection saving its session, one offering it.
tls_check() { # name port
  local req='GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' out
  out=$(printf "$req" | timeout 5 openssl s_client -connect "127.0.0.1:$2" -servername localhost \
    -sess_out "$work/sess.pem" -ign_eof 2>&1 || true)
  local proto cipher group resumed
  proto=$(sed -n 's/^ *Protocol *: *//p' <<<"$out" | head -1)
  cipher=$(sed -n 's/^ *Cipher *: *//p' <<<"$out" | head -1)
  group=$(sed -n 's/^Server Temp Key: *//p' <<<"$out" | head -1)
  out=$(printf "$req" | timeout 5 openssl s_client -connect "127.0.0.1:$2" -servername localhost \
    -sess_in "$work/sess.pem" -ign_eof 2>&1 || true)
  if grep -q '^Reused' <<<"$out"; then resumed=yes; else resumed=no; fi
  printf -- '- %s: %s %s, %s, resumes a session: %s, response %s bytes\n' "$1" "$proto" "$cipher" \
    "$group" "$resumed" "$(curl -s --cacert "$work/cert.pem" -o /dev/null -w '%{size_header}+%{size_download}' "https://localhost:$2/")"
}

# One wrk run; appends a line to $work/NAME.TEST:
#   req/s p50_ms p99_ms user_us/req sys_us/req accepts/req server_cpu% wrk_cpu% errors
measure() { # name port test conns [wrk args...]
  local name=$1 port=$2 test=$3 conns=$4 before after po0 po1 out=$work/wrk.out t=$work/wrk.time
  shift 4
  local preload=
  [ "$test" = full ] && preload=$work/noresume.so
  sleep 1
  before=$(cpu_ticks "$pid"); po0=$(passive_opens)
  { TIMEFORMAT='%U %S'; time LD_PRELOAD=$preload taskset -c "$WRK_CPU" wrk -t1 -c"$conns" \
      -d"${DURATION}s" --timeout "${WRK_TIMEOUT}s" -s "$root/bench/http.lua" "$@" \
      "https://127.0.0.1:$port/" >"$out"; } 2>"$t"
  after=$(cpu_ticks "$pid"); po1=$(passive_opens)
  kill -0 "$pid" 2>/dev/null || { echo "$name died during $test:" >&2; cat "$work/$name.log" >&2; exit 1; }
  grep -q '^WRK ' "$out" || { echo "wrk gave no summary:" >&2; cat "$out" >&2; exit 1; }
  sed -n 's/^WRK //p' "$out" | tr ' ' '\n' | awk -F= -v before="$before" -v after="$after" \
    -v tck="$tck" -v wrkcpu="$(tail -1 "$t")" -v opens=$((po1 - po0)) '
    { v[$1] = $2 }
    END {
      split(before, b, " "); split(after, a, " "); split(wrkcpu, w, " ")
      n = v["requests"]; secs = v["duration_us"] / 1e6
      err = v["connect_errors"] + v["read_errors"] + v["write_errors"] + v["status_errors"] + v["timeouts"]
      if (err > 0)
        err = sprintf("connect:%d,read:%d,write:%d,status:%d,timeout:%d", v["connect_errors"],
          v["read_errors"], v["write_errors"], v["status_errors"], v["timeouts"])
      if (n == 0) { print "0 0 0 0 0 0 0 0 " err; exit }
      printf "%.0f %.3f %.3f %.4f %.4f %.3f %.0f %.0f %s\n", n / secs,
        v["p50_us"] / 1000, v["p99_us"] / 1000,
        (a[1] - b[1]) / tck * 1e6 / n, (a[2] - b[2]) / tck * 1e6 / n,
        opens / n, 100 * (a[1] + a[2] - b[1] - b[2]) / tck / secs,
        100 * (w[1] + w[2]) / secs, err
    }' >>"$work/$name.$test"
}

tests=()
for t in $TESTS; do
  case $t in
    keepalive) for c in $CONNS; do tests+=("c$c"); done ;;
    close | full) tests+=("$t") ;;
    *) echo "unknown test '$t' (keepalive close full)" >&2; exit 2 ;;
  esac
done

echo "==> negotiated (openssl s_client $(openssl version | cut -d' ' -f2), as wrk's OpenSSL)"
for i in "${!selected[@]}"; do
  start_server "${selected[$i]}" $((PORT + i)) probe_tls_hello
  tls_check "${selected[$i]}" $((PORT + i)) | tee -a "$work/negotiated"
  stop_server
done

echo "==> run: servers on CPU $SERVER_CPU, wrk -t1 on CPU $WRK_CPU; $RUNS run(s) of ${DURATION}s per test"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for run in $(seq "$RUNS"); do
  for i in "${!selected[@]}"; do
    name=${selected[$i]}
    port=$((PORT + i))
    start_server "$name" "$port" probe_tls_hello
    if [ "$WARMUP" != 0 ]; then
      taskset -c "$WRK_CPU" wrk -t1 -c100 -d"${WARMUP}s" "https://127.0.0.1:$port/" >/dev/null
    fi
    printf '    run %d/%d %-7s' "$run" "$RUNS" "$name"
    for t in "${tests[@]}"; do
      case $t in
        close | full) measure "$name" "$port" "$t" "$HS_CONNS" -H 'Connection: close' ;;
        *) measure "$name" "$port" "$t" "${t#c}" ;;
      esac
      printf ' %s: %s req/s' "$t" "$(tail -1 "$work/$name.$t" | cut -d' ' -f1)"
    done
    echo
    stop_server
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

for name in "${selected[@]}"; do medians "$name" "${tests[*]}" rps p50 p99 usr sys opens scpu wcpu >"$work/$name.med"; done

rustls_v=$(sed -n '/^name = "rustls"$/{n;s/^version = "\(.*\)"/\1/p}' "$root/Cargo.lock" | head -1)
trustls_v=$(sed -n '/^name = "tokio-rustls"$/{n;s/^version = "\(.*\)"/\1/p}' "$root/bench/peers/Cargo.lock" 2>/dev/null | head -1)
hyper_v=$(sed -n '/^name = "hyper"$/{n;s/^version = "\(.*\)"/\1/p}' "$root/bench/peers/Cargo.lock" 2>/dev/null | head -1)
echo
echo "HTTPS hello world, one core per side: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs" \
  "($(lscpu | sed -n 's/^Model name: *//p' | head -1)), $(uname -r)"
echo "command: DURATION=$DURATION RUNS=$RUNS CONNS=\"$CONNS\" HS_CONNS=$HS_CONNS TESTS=\"$TESTS\" bench/https.sh ${*:-}"
echo "versions: rustls $rustls_v (ring), hyper $hyper_v + tokio-rustls $trustls_v," \
  "$("$nginx_bin" -v 2>&1 | sed 's/.*: //') with $(openssl version | cut -d' ' -f1-2), wrk $(wrk -v 2>&1 | head -1 | cut -d' ' -f2)"
echo "load average before: $load_before, after: $load_after"
echo "negotiated with OpenSSL's client defaults (wrk's):"
cat "$work/negotiated"
echo
awk -v tests="${tests[*]}" -v servers="${selected[*]}" -v work="$work" '
  function get(s, key) { return ((s, key) in m) ? m[s, key] : "" }
  function lbl(x) { return x == "close" ? "new conn. (resumed)" : x == "full" ? "new conn. (full handshake)" : "keep-alive -c " substr(x, 2) }
  BEGIN {
    ntests = split(tests, T, " "); nserv = split(servers, S, " ")
    for (i = 1; i <= nserv; i++) {
      f = work "/" S[i] ".med"; getline line < f; close(f)
      nw = split(line, W, " ")
      for (j = 1; j <= nw; j++) { split(W[j], kv, "="); m[S[i], kv[1]] = kv[2] }
      has[S[i]] = 1
    }
    hdr = "| server"; sep = "|---"
    for (t = 1; t <= ntests; t++) {
      hdr = hdr " | req/s " lbl(T[t]) " | p99 ms | user / sys µs/req"; sep = sep "|---:|---:|---:"
    }
    print hdr " |"; print sep "|"
    for (i = 1; i <= nserv; i++) {
      s = S[i]; row = "| " s
      for (t = 1; t <= ntests; t++) {
        x = T[t]
        row = row sprintf(" | %d | %.2f | %s / %s", get(s, x "_rps"), get(s, x "_p99"), us(get(s, x "_usr")), us(get(s, x "_sys")))
      }
      print row " |"
    }
    if ("squall" in has) {
      for (i = 1; i <= nserv; i++) {
        p = S[i]; if (p == "squall") continue
        row = "| squall / " p
        for (t = 1; t <= ntests; t++) {
          x = T[t]
          row = row " | " ratio(get("squall", x "_rps"), get(p, x "_rps")) " | " ratio(get("squall", x "_p99"), get(p, x "_p99")) \
            " | " ratio(get("squall", x "_usr"), get(p, x "_usr")) " / " ratio(get("squall", x "_sys"), get(p, x "_sys")) \
            " (sum " ratio(get("squall", x "_usr") + get("squall", x "_sys"), get(p, x "_usr") + get(p, x "_sys")) ")"
        }
        print row " |"
      }
    }
    print ""
    print "Core use, % of one core (server / wrk); TCP accepts per request for new-connection tests:"
    for (i = 1; i <= nserv; i++) {
      s = S[i]; printf "- %s:", s
      for (t = 1; t <= ntests; t++) {
        x = T[t]
        printf "%s %s %d/%d", (t > 1 ? "," : ""), lbl(x), get(s, x "_scpu"), get(s, x "_wcpu")
        if (x == "close" || x == "full") printf " (%.2f accepts/req)", get(s, x "_opens")
      }
      print ""
    }
    if ("squall" in has) {
      print ""
      print "Targets (issue #21), squall / peer:"
      ka = ""; for (t = 1; t <= ntests; t++) if (T[t] ~ /^c[0-9]/) { ka = T[t]; break }
      if (ka != "" && ("hyper" in has)) {
        target("keep-alive user CPU per request at -c " substr(ka, 2) " <= 0.8x hyper (bench/http.sh'"'"'s measure)", "hyper", ka, "usr", "<=", 0.8)
        target("keep-alive user+sys CPU per request at -c " substr(ka, 2) " <= 0.8x hyper", "hyper", ka, "cpu", "<=", 0.8)
      }
      for (t = 1; t <= ntests; t++) {
        x = T[t]; if (x != "full" && x != "close") continue
        if ("hyper" in has) {
          target(lbl(x) " per second >= 1.0x hyper", "hyper", x, "rps", ">=", 1.0)
          target("  capacity (1 / user+sys CPU per connection), squall / hyper", "hyper", x, "cap", ">=", 1.0)
        }
        if ("nginx" in has) {
          target(lbl(x) " per second >= 0.8x nginx", "nginx", x, "rps", ">=", 0.8)
          target("  capacity (1 / user+sys CPU per connection), squall / nginx", "nginx", x, "cap", ">=", 0.8)
        }
      }
    }
  }
  # kind: rps (squall/peer), usr (user CPU), cpu (user+sys, squall/peer), cap (peer cpu / squall cpu)
  function target(what, p, x, kind, op, goal,   a, b, r, ok, tmp) {
    if (kind == "rps") { a = get("squall", x "_rps"); b = get(p, x "_rps") }
    else if (kind == "usr") { a = get("squall", x "_usr"); b = get(p, x "_usr") }
    else { a = get("squall", x "_usr") + get("squall", x "_sys"); b = get(p, x "_usr") + get(p, x "_sys") }
    if (kind == "cap") { tmp = a; a = b; b = tmp }
    if (a == "" || b + 0 == 0) return
    r = a / b
    ok = (op == "<=") ? (r <= goal) : (r >= goal)
    printf "- %s: %.2f, %s\n", what, r, ok ? "met" : "MISSED"
  }
  function us(x) { return x >= 10 ? sprintf("%.0f", x) : sprintf("%.2f", x) }
  function ratio(a, b) { return (a == "" || b == "" || b + 0 == 0) ? "-" : sprintf("%.2f", a / b) }
'
for name in "${selected[@]}"; do
  for t in "${tests[@]}"; do
    errs=$(cut -d' ' -f9 "$work/$name.$t" | grep -v '^0$' | paste -sd' ' || true)
    [ -z "$errs" ] || echo "wrk errors, $name $t: $errs"
  done
done
echo
echo "Medians of $RUNS run(s), ${DURATION}s each. Ratios: squall / peer (req/s: higher is better for squall;"
echo "latency and CPU per request: lower is better). CPU per request is the server's utime+stime over"
echo "the requests wrk counted ($tck ticks/s). For new connections wrk's own handshake work (an ECDSA"
echo "verify per full handshake) usually fills its core first: then req/s measures wrk, and the server's"
echo "CPU per request (its capacity: 1e6 / µs per request on a core of its own) is the comparison."

# Sourced by bench/http.sh, bench/slow_clients.sh, bench/https.sh,
# bench/static.sh and bench/websocket.sh: starting a server pinned to its
# core, waiting until it answers rightly, and stopping it; a scratch
# directory; Tornado's presence; medians of runs. By bench/slow_bodies.sh
# and bench/soak.sh for the readings at its end, and bench/http_perf.sh for
# its scratch directory and medians.
#
# Uses $work (a scratch directory, for the server's log and the probe's
# files), SERVER_CPU and WRK_CPU, the function `server_cmd NAME PORT` (the
# command line: bench/servers.sh's, or the script's own defined after
# sourcing it) and, if the script sets it, the array `server_prefix` (a
# command the server runs under, such as `nice -n 0` or `chrt -f 50`).
# Sets $pid.

# The probes: `PROBE NAME PORT` returns 0 once the server answers as it
# should, non-zero while it does not answer yet, and exits the script if it
# answers something else (a wrong server on the port, a broken build).

# GET / over plain HTTP says "Hello, world" (the hello-world servers).
probe_hello() { # name port
  curl -sf -o "$work/body" "http://127.0.0.1:$2/" 2>/dev/null || return 1
  if ! grep -q "Hello, world" "$work/body"; then
    echo "$1 answered something other than Hello, world:" >&2
    head -c 300 "$work/body" >&2
    exit 1
  fi
}

# GET / over TLS, checked against $work/cert.pem, says "Hello, world (over
# TLS)" (bench/https.sh).
probe_tls_hello() { # name port
  curl -sf --cacert "$work/cert.pem" -o "$work/body" "https://localhost:$2/" 2>/dev/null || return 1
  if ! grep -q "Hello, world (over TLS)" "$work/body"; then
    echo "$1 answered something other than Hello, world (over TLS):" >&2
    head -c 300 "$work/body" >&2
    exit 1
  fi
}

start_server() { # name port [probe (default probe_hello)]
  local probe=${3:-probe_hello} cmd
  cmd=$(server_cmd "$1" "$2")
  # taskset execs the server (and a prefix such as nice execs taskset):
  # $pid is the server's own PID. Several processes share both cores (and
  # wrk's): one core would make the second process pointless.
  local cpus=$SERVER_CPU
  case $1 in squall2*) cpus=$SERVER_CPU,$WRK_CPU ;; esac
  # shellcheck disable=SC2086
  ${server_prefix[@]+"${server_prefix[@]}"} taskset -c "$cpus" $cmd >"$work/$1.log" 2>&1 &
  pid=$!
  rm -f "$work/probe"
  local i
  for i in $(seq 100); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$1 exited at start:" >&2; cat "$work/$1.log" >&2; exit 1
    fi
    if "$probe" "$1" "$2"; then
      return
    fi
    sleep 0.1
  done
  echo "$1 is not answering on port $2 after 10 s:" >&2
  # (A probe may leave what went wrong in $work/probe.)
  cat "$work/probe" "$work/$1.log" 2>/dev/null >&2
  exit 1
}

stop_server() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=
}

# A process's resident memory (KiB) and open descriptors, from /proc
# (bench/slow_bodies.sh, bench/soak.sh).
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
fds() { ls "/proc/$1/fd" | wc -l; }

# wrk's summary (a file) -> "requests errors p99" (errors: socket errors +
# non-2xx).
wrk_row() {
  awk '
    / requests in / { req = $1 }
    /Socket errors:/ { gsub(",", ""); err += $4 + $6 + $8 + $10 }
    /Non-2xx/ { err += $NF }
    $1 == "99%" { p99 = $2 }
    END { printf "%s %d %s\n", req ? req : 0, err, p99 ? p99 : "-" }
  ' "$1"
}

# A scratch directory for the run ($work; and $pid empty), removed at exit
# after the server still running, if any, is stopped.
scratch() {
  work=$(mktemp -d)
  pid=
  trap scratch_cleanup EXIT
  trap 'exit 130' INT TERM
}
scratch_cleanup() {
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}

# Adds tornado to the array `selected` if python3 has Tornado 6; says why
# not otherwise.
select_tornado() {
  local version
  if version=$(python3 -c 'import tornado; print(tornado.version)' 2>/dev/null); then
    case $version in
      6.*) selected+=(tornado) ;;
      *) echo "tornado: SKIPPED: python3 has Tornado $version, not 6.x" ;;
    esac
  else
    echo "tornado: SKIPPED: python3 cannot import tornado (pip install tornado, in a venv first on PATH)"
  fi
}

# The median of column $2 of file $1 (mean of the middle two for even counts).
median() { # file column
  cut -d' ' -f"$2" "$1" | sort -g | awk '{ x[NR] = $1 } END {
    if (NR % 2) print x[(NR + 1) / 2]; else print (x[NR / 2] + x[NR / 2 + 1]) / 2 }'
}

# The medians of every column of every test of one server, as TEST_COL=VALUE
# words: `medians NAME "TEST..." COL...` reads $work/NAME.TEST, whose
# columns are the COLs in order.
medians() {
  local name=$1 tests=$2 t k col
  shift 2
  for t in $tests; do
    k=0
    for col in "$@"; do
      k=$((k + 1))
      printf '%s_%s=%s ' "$t" "$col" "$(median "$work/$name.$t" "$k")"
    done
  done
}

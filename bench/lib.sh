# Sourced by bench/http.sh and bench/slow_clients.sh (after bench/servers.sh):
# starting a hello-world server pinned to its core, and stopping it.
# Uses $work (a scratch directory, for the server's log), SERVER_CPU and
# WRK_CPU; sets $pid.

start_server() { # name port
  local cmd
  cmd=$(server_cmd "$1" "$2")
  # taskset execs the server: $pid is the server's own PID.
  # Several processes share both cores (and wrk's): one core would make
  # the second process pointless.
  local cpus=$SERVER_CPU
  case $1 in squall2*) cpus=$SERVER_CPU,$WRK_CPU ;; esac
  taskset -c "$cpus" $cmd >"$work/$1.log" 2>&1 &
  pid=$!
  local i
  for i in $(seq 100); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$1 exited at start:" >&2; cat "$work/$1.log" >&2; exit 1
    fi
    if curl -sf -o "$work/body" "http://127.0.0.1:$2/" 2>/dev/null; then
      if ! grep -q "Hello, world" "$work/body"; then
        echo "$1 answered something other than Hello, world:" >&2; head -c 300 "$work/body" >&2; exit 1
      fi
      return
    fi
    sleep 0.1
  done
  echo "$1 is not answering on port $2 after 10 s" >&2; exit 1
}

stop_server() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=
}


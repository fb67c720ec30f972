#!/usr/bin/env bash
# Memory per idle keep-alive connection (issue #26): N connections to a
# hello-world server, its RSS (VmRSS from /proc/PID/status) measured
#   - before any connection,
#   - with the N connections open, before any request,
#   - after one request on each (answered, the connections kept open),
#   - after IDLE seconds more (squall releases an idle connection's buffers
#     at its timer's first quiet tick: the timer ticks every quarter of the
#     shorter timeout, 15 s by default, and the first tick after the request
#     still saw it, so this takes 15-30 s; once most connections did, the
#     server's trim watch, looking every 2 s, gives the memory back),
#   - 5 s after all are closed (what the allocator gives back; squall's
#     trim watch looks every 2 s, and a close of 10,000 connections may
#     span two looks).
# Printed per connection (KiB) and in MiB, server by server.
#
#   bench/idle_memory.sh                       # squall hyper mio, N=10000
#   N=2000 IDLE=5 bench/idle_memory.sh squall  # a quick look (no idle release yet)
#
# Environment: N (10000), IDLE (35), PORT (18190), CARGO_TARGET_DIR,
# PEERS_TARGET_DIR (as bench/http.sh; see bench/servers.sh). Needs python3
# and `ulimit -n` above N (the script raises the soft limit to the hard one).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-10000}
IDLE=${IDLE:-35}
PORT=${PORT:-18190}
export RUST_LOG=${RUST_LOG:-warn}
servers=("$@")
[ ${#servers[@]} -gt 0 ] || servers=(squall hyper mio)
. "$root/bench/servers.sh"
ulimit -n "$(ulimit -Hn)"
(cd "$root" && cargo build -q --release --example hello_server --example hello_raw)
bins=$(peer_bins "${servers[@]}")
if [ -n "$bins" ]; then
  # shellcheck disable=SC2086
  (cd "$root/bench/peers" && CARGO_TARGET_DIR="$peers_target" cargo build -q --release $bins)
fi
pid=
cleanup() { [ -z "$pid" ] || kill "$pid" 2>/dev/null || true; }
trap cleanup EXIT

printf '%-10s %8s %12s %14s %14s %14s %12s\n' server N "base MiB" "open KiB/conn" "after req KiB" "idle KiB/conn" "closed MiB"
for s in "${servers[@]}"; do
  # shellcheck disable=SC2046
  $(server_cmd "$s" "$PORT") >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    curl -sf -o /dev/null "http://127.0.0.1:$PORT/" 2>/dev/null && break
    sleep 0.1
  done
  python3 - "$pid" "$PORT" "$N" "$IDLE" "$s" <<'EOF'
import socket, sys, time

pid, port, n, idle, name = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]

def rss_kib():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])

base = rss_kib()
conns = []
for i in range(n):
    conns.append(socket.create_connection(("127.0.0.1", port), timeout=30))
time.sleep(1.0)
opened = rss_kib()
request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
for c in conns:
    c.sendall(request)
    got = b""
    # A hello-world answer: the head, then a body of its Content-Length.
    while b"\r\n\r\n" not in got:
        got += c.recv(4096)
    head, body = got.split(b"\r\n\r\n", 1)
    length = next(int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length"))
    while len(body) < length:
        body += c.recv(4096)
time.sleep(1.0)
answered = rss_kib()
time.sleep(idle)
idle_rss = rss_kib()
for c in conns:
    c.close()
time.sleep(5.0)
closed = rss_kib()
per = lambda r: (r - base) / n
print(f"{name:<10} {n:>8} {base / 1024:>12.1f} {per(opened):>14.2f} {per(answered):>14.2f} {per(idle_rss):>14.2f} {closed / 1024:>12.1f}")
EOF
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=
done

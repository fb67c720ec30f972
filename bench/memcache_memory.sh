#!/usr/bin/env bash
# The memcache proxy's memory under a large answer (issue #26): one 1.2 KB
# request, `get` of the same 1 MiB value 300 times (300 MiB of answer), sent
# to the proxy (examples/memcache_proxy, its own process, in front of one
# memcached). Prints the proxy's peak RSS (VmHWM) before and after, how much
# of the answer arrived and how long it took; then memcslap's `--test=mget`
# of 3,000 keys (a 120 KB line) and a binary-protocol request, through the
# proxy; last, what the bound costs a multi-get of small values.
#
#   bash bench/memcache_memory.sh
#   PROXY_BIN=path/to/an/older/memcache_proxy bash bench/memcache_memory.sh   # compare
#   COPIES=1000 bash bench/memcache_memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."

COPIES=${COPIES:-300}

for tool in memcached memcslap python3; do
  command -v "$tool" >/dev/null || { echo "$tool is not installed (apt: memcached libmemcached-tools)"; exit 1; }
done

if [ -z "${PROXY_BIN:-}" ]; then
  cargo build --release --quiet --example memcache_proxy
  PROXY_BIN="${CARGO_TARGET_DIR:-target}/release/examples/memcache_proxy"
fi

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on port $1"; exit 1
}

MC_PORT=$(free_port)
PROXY_PORT=$(free_port)
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; wait; }
trap cleanup EXIT

memcached -l 127.0.0.1 -p "$MC_PORT" -U 0 -m 256 -u root &
PIDS+=($!)
"$PROXY_BIN" --listen "127.0.0.1:$PROXY_PORT" --upstream "127.0.0.1:$MC_PORT" --timeout-ms 5000 >/dev/null &
PROXY_PID=$!
PIDS+=($PROXY_PID)
wait_port "$MC_PORT"
wait_port "$PROXY_PORT"

hwm() { awk '/VmHWM/ {print $2 " kB"}' "/proc/$PROXY_PID/status"; }

echo "== $(date -u +%FT%TZ), $(nproc) cores, memcached $(memcached -V | cut -d' ' -f2), proxy $PROXY_BIN"
big_get() {  # PORT LABEL: set the value, get it COPIES times in one request, count what comes
  python3 - "$1" "$COPIES" "$2" <<'PY'
import socket, sys, time
port, copies, label = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
value = bytes(i % 251 for i in range(1024 * 1024 - 1024))
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"set big 0 0 %d\r\n" % len(value) + value + b"\r\n")
assert s.recv(100) == b"STORED\r\n"
request = b"get" + b" big" * copies + b"\r\n"
block = b"VALUE big 0 %d\r\n" % len(value) + value + b"\r\n"
want = len(block) * copies + len(b"END\r\n")
started = time.time()
s.sendall(request)
got, tail = 0, b""
while got < want:
    data = s.recv(1 << 20)
    if not data:
        break
    got += len(data)
    tail = (tail + data)[-5:]
took = time.time() - started
ok = got == want and tail == b"END\r\n"
print(f"{label}: {len(request)}-byte request, get of one {len(value)}-byte value x {copies}: "
      f"{got} of {want} bytes in {took:.2f} s, {'whole, END last' if ok else 'CONNECTION DROPPED'}")
PY
}
big_get "$MC_PORT" "memcached direct"
echo "proxy peak RSS at start: $(hwm)"
big_get "$PROXY_PORT" "through the proxy"
echo "proxy peak RSS after:    $(hwm)"

echo "== memcslap --test=mget --execute-number=3000 (one 3,000-key get line) through the proxy"
memcslap --servers="127.0.0.1:$PROXY_PORT" --test=mget --execute-number=3000 2>&1 | sed 's/^/   /'
python3 - "$PROXY_PORT" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
keys = [b"mget-%06d-%s" % (i, b"k" * 30) for i in range(3000)]
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"".join(b"set %s 0 0 1 noreply\r\nv\r\n" % k for k in keys) + b"version\r\n")
buf = b""
while not buf.endswith(b"\r\n"):
    buf += s.recv(100)
line = b"get " + b" ".join(keys) + b"\r\n"
started = time.time()
s.sendall(line)
buf = b""
while not (buf.endswith(b"END\r\n") or buf.startswith(b"CLIENT_ERROR") or buf.startswith(b"SERVER_ERROR")):
    data = s.recv(1 << 16)
    if not data:
        break
    buf += data
print(f"   own client: {len(line)}-byte get of 3000 keys: {buf.count(b'VALUE ')} values in "
      f"{time.time() - started:.3f} s; {buf[:40]!r}...{buf[-10:]!r}")
PY

echo "== a binary-protocol GET (first byte 0x80) through the proxy"
python3 - "$PROXY_PORT" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(5)
started = time.time()
s.sendall(bytes([0x80, 0, 0, 1] + [0] * 7 + [1] + [0] * 12) + b"k")
answer = b""
try:
    while True:
        data = s.recv(1000)
        if not data:
            answer += b" <closed>"
            break
        answer += data
except socket.timeout:
    answer += b" <no answer, still open>"
print(f"   {answer!r} after {time.time() - started:.3f} s")
PY
echo "proxy peak RSS at the end: $(hwm)"

# What the bound costs: a window is 4 keys (4 MiB of 1 MiB values), so a
# long multi-get of small values takes one upstream round trip per 4 keys;
# `--window-bytes 64m` (64 keys a window) is shown beside it. Skipped for
# an older binary without the option.
if "$PROXY_BIN" --help | grep -q -- --window-bytes; then
  WIDE_PORT=$(free_port)
  "$PROXY_BIN" --listen "127.0.0.1:$WIDE_PORT" --upstream "127.0.0.1:$MC_PORT" --timeout-ms 5000 \
    --window-bytes 64m >/dev/null &
  PIDS+=($!)
  wait_port "$WIDE_PORT"
fi
echo "== one get of N 100-byte values, 2000 times on one connection: p50 / p99"
for n in 1 10 100; do
  for target in "direct $MC_PORT" "proxy $PROXY_PORT" ${WIDE_PORT:+"proxy-64m $WIDE_PORT"}; do
    set -- $target
    python3 - "$2" "$n" "$1" <<'PY'
import socket, sys, time
port, n, label = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
s = socket.create_connection(("127.0.0.1", port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
keys = [b"small:%d" % i for i in range(n)]
s.sendall(b"".join(b"set %s 0 0 100 noreply\r\n%s\r\n" % (k, b"x" * 100) for k in keys) + b"version\r\n")
buf = b""
while not buf.endswith(b"\r\n"):
    buf += s.recv(100)
line = b"get " + b" ".join(keys) + b"\r\n"
times = []
for _ in range(2000):
    started = time.perf_counter()
    s.sendall(line)
    buf = b""
    while not buf.endswith(b"END\r\n"):
        buf += s.recv(1 << 20)
    times.append(time.perf_counter() - started)
    assert buf.count(b"VALUE ") == n
times.sort()
print(f"   {n:3} keys, {label:9}: {times[1000] * 1e3:.3f} ms / {times[1980] * 1e3:.3f} ms")
PY
  done
done

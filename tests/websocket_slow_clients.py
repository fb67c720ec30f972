"""Opens N WebSocket connections that upgrade and then send one byte of a
frame header and nothing more: they never finish a frame, never read past
the 101, never answer a ping. Each waits for its 101 before the next
connects (as clients arriving one after another would, and so the listen
backlog never overflows into SYN retransmits). Prints "sent N" once all are out, then holds them until
stdin closes. Usage: websocket_slow_clients.py PORT N"""
import socket
import sys
import time

port, n = int(sys.argv[1]), int(sys.argv[2])
request = (
    "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n"
).encode() + b"\x81"  # the first byte of a text frame, and no more
held = []
start = time.time()
slowest = 0.0
for i in range(n):
    t = time.time()
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(request)
    head = b""
    while b"\r\n\r\n" not in head:
        got = s.recv(4096)
        if not got:
            raise SystemExit(f"connection {i} closed before its 101")
        head += got
    if not head.startswith(b"HTTP/1.1 101"):
        raise SystemExit(f"connection {i}: {head[:100]!r}")
    held.append(s)
    slowest = max(slowest, time.time() - t)
print(f"sent {len(held)} in {time.time() - start:.1f}s (slowest connect {slowest * 1000:.0f} ms)",
      flush=True)
sys.stdin.read()

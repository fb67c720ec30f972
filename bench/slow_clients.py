"""Slowloris clients for bench/slow_clients.sh: N connections, each sending
a request head one byte every INTERVAL seconds and never finishing it.

    python3 bench/slow_clients.py PORT N INTERVAL

Prints "OPEN n" once every connection is made (non-blocking connects,
at most 512 in flight, so a slow accepter is not flooded past its backlog),
then trickles. On a line on stdin ("status"), prints "STATUS open closed":
how many the server still holds and how many it closed. At EOF on stdin
it closes every connection and exits.
"""

import os
import selectors
import socket
import sys
import time

port, n, interval = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
HEAD = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100000

sel = selectors.DefaultSelector()
conns = []  # [socket, bytes sent]
connecting = {}
started = 0
while started < n or connecting:
    while started < n and len(connecting) < 512:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        connecting[s.fileno()] = s
        sel.register(s, selectors.EVENT_WRITE)
        started += 1
    for key, _ in sel.select(timeout=5):
        s = connecting.pop(key.fd)
        sel.unregister(s)
        err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            print(f"connect failed: {os.strerror(err)}", file=sys.stderr)
            s.close()
            continue
        conns.append([s, 0])
print(f"OPEN {len(conns)}", flush=True)

sel.register(sys.stdin, selectors.EVENT_READ)
closed = 0
# One pass over all connections per interval, spread evenly over it.
step = max(1, len(conns) // max(1, int(interval * 100)))
i = 0
next_slice = time.monotonic()
while True:
    timeout = max(0.0, next_slice - time.monotonic())
    for key, _ in sel.select(timeout=timeout):
        line = sys.stdin.readline()
        if not line:
            for c in conns:
                if c[0] is not None:
                    c[0].close()
            sys.exit(0)
        still = sum(1 for c in conns if c[0] is not None)
        print(f"STATUS {still} {closed}", flush=True)
    if time.monotonic() < next_slice:
        continue
    next_slice += interval * step / max(1, len(conns))
    for c in conns[i:i + step]:
        s = c[0]
        if s is None:
            continue
        try:
            s.send(HEAD[c[1]:c[1] + 1])
            c[1] += 1
            # Anything back (an error answer) or the end: the server
            # closed it.
            if s.recv(4096, socket.MSG_DONTWAIT) == b"":
                raise ConnectionResetError
            s.close()
            c[0] = None
            closed += 1
        except BlockingIOError:
            pass
        except OSError:
            s.close()
            c[0] = None
            closed += 1
    i = (i + step) % max(1, len(conns))

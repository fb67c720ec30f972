"""Hostile HTTP and memcached clients for the soak and slow-client benches
(issue #26). One process, one epoll loop, thousands of connections.

    python3 bench/attackers.py MODE PORT [N] [options]

Modes (N connections held at once unless said otherwise):
  blank  sends "\\r\\n" every INTERVAL s (default 5) and never a request line
  head   a request head trickling in, one byte every INTERVAL s (default 1),
         never finished
  body   a whole head declaring Content-Length LENGTH (default 50,000,000),
         then the body one byte every INTERVAL s (default 10)
  reset  RATE connections a second (default 20; N unused) that send part of
         a request (half a head, a head and half its body, a head with
         Expect: 100-continue) and reset (RST) it 20 ms later
  mget   memcached: stores KEYS values of VALUE bytes (default 16 x 512 KiB)
         through PORT, then N connections each ask for them all REPEAT
         times in one multi-get (default 100: 800 MiB of answer), read
         nothing for HOLD s (default 5), and reset

Options: --interval S, --length N, --rate R, --keys K, --value B,
--repeat R, --hold S, --seconds S (stop after S, default: until stdin
closes or SIGTERM), --no-reconnect (by default a connection the server
closes is replaced at once, so N stay held), --status S (a STATUS line
every S seconds, default 10).

Prints "OPEN n" once the first N connections are made (non-blocking
connects, at most 512 in flight: a slow accepter is not flooded past its
backlog), then a STATUS line every --status seconds and at the end:

  STATUS t=<s> open=<held now> opened=<total> closed=<by the server>
         failed=<connects refused> answers=<status:count,...>

`answers` counts the status lines the server sent before closing (408 for
a body too slow, say); for mget the number of bytes received instead.
"""

import argparse
import heapq
import itertools
import os
import selectors
import signal
import socket
import struct
import sys
import time

p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
p.add_argument("mode", choices=["blank", "head", "body", "reset", "mget"])
p.add_argument("port", type=int)
p.add_argument("n", type=int, nargs="?", default=100)
p.add_argument("--host", default="127.0.0.1")
p.add_argument("--interval", type=float)
p.add_argument("--length", type=int, default=50_000_000)
p.add_argument("--rate", type=float, default=20.0)
p.add_argument("--keys", type=int, default=16)
p.add_argument("--value", type=int, default=512 * 1024)
p.add_argument("--repeat", type=int, default=100)
p.add_argument("--hold", type=float, default=5.0)
p.add_argument("--seconds", type=float)
p.add_argument("--no-reconnect", action="store_true")
p.add_argument("--status", type=float, default=10.0)
args = p.parse_args()
if args.interval is None:
    args.interval = {"blank": 5.0, "head": 1.0, "body": 10.0}.get(args.mode, 1.0)

ADDR = (args.host, args.port)
HEAD = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow\r\nX-Slow: "
    + b"a" * 100_000
)
BODY_HEAD = (
    f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
    f"Content-Length: {args.length}\r\n\r\n"
).encode()
RESET_PAYLOADS = [
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ",
    b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n" + b"b" * 500,
    b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n"
    b"Expect: 100-continue\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET / HTTP/1.1\r\nHo",
]
KEYS = [f"soak:mget:{i}" for i in range(args.keys)]
MGET = ("get " + " ".join(KEYS * args.repeat) + "\r\n").encode()

sel = selectors.DefaultSelector()
t0 = time.monotonic()
stats = {"opened": 0, "closed": 0, "failed": 0}
answers = {}
stopping = False


class Conn:
    __slots__ = ("sock", "sent", "next_at", "got", "connected")

    def __init__(self, sock):
        self.sock = sock
        self.sent = 0
        self.next_at = 0.0
        self.got = b""
        self.connected = False


conns = {}  # fd -> Conn, connected or connecting
connecting = 0
# (when, seq, conn): each connection's next turn; an entry whose time is
# not the connection's `next_at` (or whose connection is gone) is stale.
turns = []
seq = itertools.count()


def schedule(c, when):
    c.next_at = when
    heapq.heappush(turns, (when, next(seq), c))


def reset(sock):
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def open_one():
    global connecting
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    s.connect_ex(ADDR)
    c = Conn(s)
    conns[s.fileno()] = c
    sel.register(s, selectors.EVENT_WRITE, c)
    connecting += 1


def drop(c, by_server):
    """Forgets `c`; counts it closed by the server if it was."""
    try:
        sel.unregister(c.sock)
    except (KeyError, ValueError):
        pass
    conns.pop(c.sock.fileno(), None)
    if by_server:
        stats["closed"] += 1
        if args.mode == "mget":
            answers["bytes"] = answers.get("bytes", 0) + len(c.got)
        elif c.got.startswith(b"HTTP/1."):
            code = c.got[9:12].decode("latin-1")
            answers[code] = answers.get(code, 0) + 1
        elif c.got:
            answers["other"] = answers.get("other", 0) + 1
        c.sock.close()
    else:
        reset(c.sock)


def first_bytes(c, now):
    """What a connection sends as soon as it is made."""
    if args.mode == "body":
        c.sock.send(BODY_HEAD)
        schedule(c, now + args.interval)
    elif args.mode == "mget":
        try:
            c.sock.send(MGET)
        except BlockingIOError:
            pass
        # A slow reader: it reads nothing until its hold is over.
        sel.unregister(c.sock)
        schedule(c, now + args.hold)
    elif args.mode == "reset":
        c.sock.send(RESET_PAYLOADS[stats["opened"] % len(RESET_PAYLOADS)])
        schedule(c, now + 0.02)
    else:
        # The first byte at a random point of the interval: the sends of
        # thousands of connections spread evenly.
        schedule(c, now + args.interval * (c.sock.fileno() % 1000) / 1000)


def trickle(c, now):
    """A connection's turn: one more byte, or (reset, mget) its end."""
    if args.mode in ("reset", "mget"):
        drop(c, False)
        return
    if args.mode == "blank":
        c.sock.send(b"\r\n")
    elif args.mode == "head":
        c.sock.send(HEAD[c.sent % len(HEAD) : c.sent % len(HEAD) + 1])
    else:
        c.sock.send(b"x")
    c.sent += 1
    schedule(c, now + args.interval)


def on_event(c, mask, now):
    global connecting
    if not c.connected:
        connecting -= 1
        err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            stats["failed"] += 1
            conns.pop(c.sock.fileno(), None)
            sel.unregister(c.sock)
            c.sock.close()
            return
        c.connected = True
        stats["opened"] += 1
        sel.modify(c.sock, selectors.EVENT_READ, c)
        first_bytes(c, now)
        return
    try:
        data = c.sock.recv(65536)
    except BlockingIOError:
        return
    except OSError:
        drop(c, True)
        return
    if not data:
        drop(c, True)
        return
    if len(c.got) < 64:
        c.got += data[:64]


def status(final=False):
    held = sum(1 for c in conns.values() if c.connected)
    ans = ",".join(f"{k}:{v}" for k, v in sorted(answers.items())) or "-"
    print(
        f"STATUS t={time.monotonic() - t0:.0f} open={held} opened={stats['opened']} "
        f"closed={stats['closed']} failed={stats['failed']} answers={ans}"
        + (" final" if final else ""),
        flush=True,
    )


def mget_setup():
    s = socket.create_connection(ADDR)
    value = b"v" * args.value
    for key in KEYS:
        s.sendall(f"set {key} 0 0 {len(value)}\r\n".encode() + value + b"\r\n")
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = s.recv(100)
            if not chunk:
                raise SystemExit("mget: the proxy closed during set")
            reply += chunk
        if reply != b"STORED\r\n":
            raise SystemExit(f"mget: set {key}: {reply!r}")
    s.close()


def stop(*_):
    global stopping
    stopping = True


signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
if args.mode == "mget":
    mget_setup()

try:
    sel.register(sys.stdin, selectors.EVENT_READ, None)
except (ValueError, PermissionError, OSError):
    pass  # stdin is not pollable (a file, /dev/null): stop by signal or --seconds

announced = False
next_status = t0 + args.status
next_reset = t0
while not stopping:
    now = time.monotonic()
    if args.seconds is not None and now - t0 >= args.seconds:
        break
    # Keep N held (or, for reset, RATE a second).
    if args.mode == "reset":
        while next_reset <= now and connecting < 512:
            open_one()
            next_reset += 1.0 / args.rate
    else:
        if not announced or not args.no_reconnect:
            for _ in range(min(512 - connecting, args.n - len(conns))):
                open_one()
    if not announced and args.mode != "reset" and stats["opened"] + stats["failed"] >= args.n:
        print(f"OPEN {stats['opened']}", flush=True)
        announced = True
    if not announced and args.mode == "reset":
        print("OPEN 0", flush=True)
        announced = True
    for key, mask in sel.select(timeout=0.01):
        if key.data is None:
            if not sys.stdin.readline():
                stopping = True
                sel.unregister(sys.stdin)
            else:
                status()
            continue
        try:
            on_event(key.data, mask, now)
        except OSError:
            drop(key.data, True)
    now = time.monotonic()
    while turns and turns[0][0] <= now:
        when, _, c = heapq.heappop(turns)
        if when != c.next_at or conns.get(c.sock.fileno()) is not c:
            continue
        try:
            trickle(c, now)
        except BlockingIOError:
            schedule(c, now + args.interval)
        except OSError:
            drop(c, True)
    if now >= next_status:
        status()
        next_status += args.status

status(final=True)
for c in list(conns.values()):
    reset(c.sock)
os._exit(0)

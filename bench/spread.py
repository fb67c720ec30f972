#!/usr/bin/env python3
"""How connections spread over the processes of a multi-process server.

Usage: spread.py PORT [THREADS [REQUESTS_PER_THREAD]]

Each request is a new connection (HTTP/1.0 GET /) to 127.0.0.1:PORT; the
server answers "pid P task T ..." (examples/multiprocess.rs does). Prints the
answers per pid and the requests per second.
"""
import collections
import socket
import sys
import threading
import time


def get(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        chunks = []
        while True:
            chunk = conn.recv(4096)
            if not chunk:
                break
            chunks.append(chunk)
    body = b"".join(chunks).split(b"\r\n\r\n", 1)[1].decode()
    return body.split()[1]


def main():
    port = int(sys.argv[1])
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    each = int(sys.argv[3]) if len(sys.argv) > 3 else 500
    counts = collections.Counter()
    lock = threading.Lock()
    errors = []

    def client():
        mine = collections.Counter()
        for _ in range(each):
            try:
                mine[get(port)] += 1
            except OSError as err:
                errors.append(err)
        with lock:
            counts.update(mine)

    started = time.monotonic()
    workers = [threading.Thread(target=client) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    took = time.monotonic() - started
    total = sum(counts.values())
    shares = ", ".join(
        f"{pid}: {n} ({100 * n / total:.1f}%)" for pid, n in sorted(counts.items())
    )
    print(f"{total} answers in {took:.2f}s ({total / took:.0f}/s), {len(errors)} errors")
    print(f"per pid: {shares}")


if __name__ == "__main__":
    main()

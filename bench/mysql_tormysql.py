"""The Python peer of `examples/tormysql --bench` in bench/mysql.sh: the
article's own system, TorMySQL (PyMySQL in greenlets) on Tornado's IOLoop.
N clients, each a coroutine running one query back to back (a cursor's
execute, then fetchall) for S seconds; prints queries/s and this process's
CPU per query (getrusage), user and system apart.

    python3 bench/mysql_tormysql.py HOST PORT USER PASSWORD DB CONNECTIONS SECONDS SQL

TorMySQL 0.4.3 (the last release, 2020) imports names that Tornado removed
in 6.1 (`tornado.iostream._ERRNO_WOULDBLOCK`...) and reads PyMySQL internals
that changed in 1.1: it runs on Tornado 6.0.4 with PyMySQL 1.0.3.
"""
import resource
import sys
import time

import tornado
from tornado.ioloop import IOLoop
import tormysql


def cpu_seconds():
    """(user, system) CPU seconds of this process so far (getrusage: to the
    microsecond, where /proc/self/stat counts 10 ms ticks)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


async def main(host, port, user, password, db, connections, seconds, sql):
    clients = [
        tormysql.Client(host=host, port=port, user=user, passwd=password, db=db, charset="utf8mb4")
        for _ in range(connections)
    ]
    for c in clients:
        await c.connect()
    counts = {"done": 0, "rows": 0}
    cpu0, t0 = cpu_seconds(), time.monotonic()
    deadline = t0 + seconds

    async def run(client):
        while time.monotonic() < deadline:
            cursor = client.cursor()
            await cursor.execute(sql)
            rows = cursor.fetchall()
            await cursor.close()
            counts["done"] += 1
            counts["rows"] += len(rows)

    await tornado.gen.multi([run(c) for c in clients])
    wall, cpu1 = time.monotonic() - t0, cpu_seconds()
    user, sys_ = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    n = max(counts["done"], 1)
    print(
        "tormysql(tornado-%s) %r: %.0f queries/s, %.1f us CPU/query (%.1f user + %.1f sys), %d queries, %d rows each, %d connections"
        % (tornado.version, sql, n / wall, (user + sys_) * 1e6 / n, user * 1e6 / n, sys_ * 1e6 / n,
           counts["done"], counts["rows"] // n, connections)
    )
    for c in clients:
        await c.close()


if __name__ == "__main__":
    host, port, user, password, db, connections, seconds, sql = sys.argv[1:9]
    IOLoop.current().run_sync(
        lambda: main(host, int(port), user, password, db, int(connections), float(seconds), sql)
    )

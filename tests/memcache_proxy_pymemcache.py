"""Round trips through the memcache proxy with pymemcache, a client nobody
here wrote. Run by tests/memcache_proxy.rs:

    python3 memcache_proxy_pymemcache.py PROXY_PORT UPSTREAM_PORT...

Exits non-zero (with the failed assertion) if anything is off.
"""
import sys

from pymemcache.client.base import Client


def client(port):
    return Client(("127.0.0.1", port), connect_timeout=5, timeout=5, default_noreply=False)


def main():
    proxy_port = int(sys.argv[1])
    upstream_ports = [int(p) for p in sys.argv[2:]]
    mc = client(proxy_port)

    assert mc.version().startswith(b"squall"), mc.version()

    # set / get / delete
    assert mc.set("greeting", b"hello") is True
    assert mc.get("greeting") == b"hello"
    assert mc.delete("greeting") is True
    assert mc.get("greeting") is None
    assert mc.delete("greeting") is False

    # flags survive the trip (pymemcache keeps them for its serde)
    assert mc.set("flagged", b"x", expire=0) is True
    assert mc.raw_command(b"get flagged", b"END\r\n").startswith(b"VALUE flagged 0 1")

    # add / replace / append / prepend / touch
    assert mc.add("a", b"1") is True
    assert mc.add("a", b"2") is False
    assert mc.replace("a", b"3") is True
    assert mc.replace("never-set", b"3") is False
    assert mc.append("a", b"4") is True
    assert mc.prepend("a", b"2") is True
    assert mc.get("a") == b"234"
    assert mc.touch("a", 100) is True
    assert mc.touch("never-set", 100) is False

    # incr / decr
    assert mc.set("counter", b"10") is True
    assert mc.incr("counter", 5) == 15
    assert mc.decr("counter", 20) == 0
    assert mc.incr("never-set", 1) is None

    # gets / cas
    value, unique = mc.gets("counter")
    # memcached rewrites a shrinking counter in place, padded with spaces
    assert value.strip() == b"0", value
    assert mc.cas("counter", b"100", unique) is True
    assert mc.cas("counter", b"200", unique) is False  # EXISTS: stale unique
    assert mc.get("counter") == b"100"
    assert mc.cas("never-set", b"1", 1) is None  # NOT_FOUND

    # noreply: pymemcache does not wait, the value is there anyway
    mc.set("quiet", b"shh", noreply=True)
    assert mc.get("quiet") == b"shh"

    # many keys, split across the upstreams and merged
    keys = ["multi:%d" % i for i in range(200)]
    for k in keys:
        assert mc.set(k, k.encode()) is True
    got = mc.get_many(keys + ["multi:missing"])
    assert got == {k: k.encode() for k in keys}, sorted(set(keys) - set(got))
    got = mc.gets_many(keys[:10])
    assert all(v[0] == k.encode() and v[1] for k, v in got.items()) and len(got) == 10

    # each key is stored on exactly one upstream, and every upstream has some
    direct = [client(p) for p in upstream_ports]
    holders = {k: [i for i, d in enumerate(direct) if d.get(k) is not None] for k in keys}
    assert all(len(h) == 1 for h in holders.values()), holders
    counts = [sum(1 for h in holders.values() if h == [i]) for i in range(len(direct))]
    assert all(c > 0 for c in counts), counts

    # values up to just under 1 MiB
    for size in (0, 1, 100_000, 1024 * 1024 - 1024):
        data = bytes(i % 251 for i in range(size))
        assert mc.set("big:%d" % size, data) is True
        assert mc.get("big:%d" % size) == data, size

    # flush_all reaches every upstream
    assert mc.flush_all() is True
    assert mc.get_many(keys[:50]) == {}
    assert all(d.get(k) is None for d in direct for k in keys[:50])

    print("pymemcache: all round trips ok; keys per upstream:", counts)


if __name__ == "__main__":
    main()

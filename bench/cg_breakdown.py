#!/usr/bin/env python3
"""Where a callgrind profile's instructions go, per request.

Reads a profile kept by `KEEP=1 bench/http_callgrind.sh` (or any callgrind
output) and prints self costs divided by a request count:

  bench/cg_breakdown.py callgrind.squall.out 40000            # per function
  bench/cg_breakdown.py callgrind.squall.out 40000 --lines on_read BINARY

The kept profile is the 2N run, so divide by 2N (40000 for N=20000). Its
totals include start-up; the exact per-request count is the difference
`bench/http_callgrind.sh` prints.

`--lines FUNC BINARY` splits the self cost of the functions whose name
contains FUNC by source line (through `addr2line`). It needs a profile
recorded with `--dump-instr=yes` (set `CALLGRIND_ARGS=--dump-instr=yes`) and
a binary with line tables (build with
`CARGO_PROFILE_RELEASE_DEBUG=line-tables-only`). Inlined code is counted on
the lines it came from, so a hot path's cost shows line by line.
"""
import re
import signal
import subprocess
import sys
from collections import defaultdict


def records(path):
    """Yields (function name, address or None, self cost) for each cost line;
    the inclusive costs of calls are skipped."""
    names = {}
    current = "?"
    after_calls = False
    last = 0
    for line in open(path):
        line = line.rstrip("\n")
        if line.startswith(("fn=", "cfn=")):
            m = re.match(r"c?fn=\((\d+)\)(?: (.*))?", line)
            if m.group(2):
                names[m.group(1)] = m.group(2)
            if line.startswith("fn="):
                current = names.get(m.group(1), "?")
            continue
        if line.startswith("calls="):
            after_calls = True
            continue
        if not line or not (line[0].isdigit() or line[0] in "+-*"):
            continue
        fields = line.split()
        if after_calls:
            after_calls = False
            continue
        first = fields[0]
        addr = None
        if len(fields) >= 3:  # positions: instr line
            if first.startswith("0x"):
                addr = int(first, 16)
            elif first[0] in "+-":
                addr = last + int(first)
            else:
                addr = last
            last = addr
        yield current, addr, int(fields[-1])


def by_function(path, div, top=40):
    cost = defaultdict(int)
    for name, _, c in records(path):
        cost[name] += c
    print(f"total {sum(cost.values()) / div:.1f} per request")
    for name, c in sorted(cost.items(), key=lambda kv: -kv[1])[:top]:
        print(f"{c / div:8.1f}  {name[:110]}")


def by_line(path, div, func, binary, top=40):
    cost = defaultdict(int)
    for name, addr, c in records(path):
        if func in name and addr is not None:
            cost[addr] += c
    if not cost:
        sys.exit("no instruction-level costs: record with --dump-instr=yes")
    addrs = sorted(cost)
    out = subprocess.run(
        ["addr2line", "-e", binary] + [hex(a) for a in addrs],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    lines = defaultdict(int)
    for addr, where in zip(addrs, out):
        lines[where] += cost[addr]
    print(f"{func}: {sum(lines.values()) / div:.1f} per request")
    for where, c in sorted(lines.items(), key=lambda kv: -kv[1])[:top]:
        print(f"{c / div:8.1f}  {where}")


def main():
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quiet under `| head`
    args = sys.argv[1:]
    if len(args) < 2:
        sys.exit(__doc__)
    path, div = args[0], float(args[1])
    if len(args) >= 5 and args[2] == "--lines":
        by_line(path, div, args[3], args[4])
    else:
        by_function(path, div)


if __name__ == "__main__":
    main()

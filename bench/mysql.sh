#!/usr/bin/env bash
# MySQL clients on one loop, side by side: examples/tormysql (squall
# greenlets; each query a Future from async_call_method, as TorMySQL does,
# and the same driver as one straight-line child per connection), Python's
# TorMySQL on Tornado (the article's own system), and mysql_async on a tokio
# current_thread runtime (bench/peers). 100 connections, one query each at
# a time, back to back, against a MariaDB of our own (temporary data
# directory, free port; `tormysql --server`).
#
#   bash bench/mysql.sh                  # 3 rounds x 5 s per client and query
#   ROUNDS=5 SECS=10 CONNECTIONS=100 bash bench/mysql.sh
#   SERVER_CPU=0 CLIENT_CPU=1 bash bench/mysql.sh   # pinned (taskset)
#
# Each run prints queries/s and the client process's CPU per query
# (user + system time from getrusage over the timed part, and the two
# apart); the table at the end has the median of the rounds. By default the
# server runs on the same cores as the client, so the figures compare the
# clients; they are not limits. SERVER_CPU / CLIENT_CPU (taskset CPU lists)
# pin the server and the clients apart: the clients' queries/s are then
# bounded by one server core, and CPU per query is the figure to compare.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
SECS=${SECS:-5}
CONNECTIONS=${CONNECTIONS:-100}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
VENV=${TORMYSQL_VENV:-$TARGET/tormysql-venv}
QUERIES=("SELECT 1" "SELECT seq, CONCAT('name-', seq), seq * 2.5 FROM seq_1_to_100")
SERVER_PIN=() CLIENT_PIN=()
if [ -n "${SERVER_CPU:-}" ]; then SERVER_PIN=(taskset -c "$SERVER_CPU"); fi
if [ -n "${CLIENT_CPU:-}" ]; then CLIENT_PIN=(taskset -c "$CLIENT_CPU"); fi

cargo build --release --quiet --features stackful --example tormysql
BIN="$TARGET/release/examples/tormysql"
(cd bench/peers && CARGO_TARGET_DIR="$TARGET/peers" cargo build --release --quiet --bin mysql_async_load)
PEER="$TARGET/peers/release/mysql_async_load"

# TorMySQL 0.4.3 (its last release, 2020) needs Tornado <= 6.0 (it imports
# names removed in 6.1) and PyMySQL < 1.1 (it reads PyMySQL's internals).
if [ ! -x "$VENV/bin/python3" ]; then
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python3" -c 'import tormysql' 2>/dev/null; then
  "$VENV/bin/python3" -m pip install -q --disable-pip-version-check "tormysql==0.4.3" "tornado==6.0.4" "PyMySQL==1.0.3" \
    || echo "tormysql did not install: its rows are left out"
fi

# A MariaDB of our own: the example prints its port and serves until its
# stdin closes (then stops it by PID and removes the data directory).
coproc SERVER { "${SERVER_PIN[@]}" "$BIN" --server; }
read -r PORT <&"${SERVER[0]}"
cleanup() { exec {SERVER[1]}>&-; wait "$SERVER_PID" 2>/dev/null || true; }
trap cleanup EXIT
ADDR="127.0.0.1:$PORT"
USER=native PASS=native-pw DB=squall_test

OUT=$(mktemp)
echo "== $(date -u +%FT%TZ), $(nproc) cores, $CONNECTIONS connections, ${SECS}s x $ROUNDS rounds, MariaDB on $ADDR (server CPUs ${SERVER_CPU:-any}, clients ${CLIENT_CPU:-any})"
for round in $(seq "$ROUNDS"); do
  for sql in "${QUERIES[@]}"; do
    "${CLIENT_PIN[@]}" "$BIN" --bench "$ADDR" --connections "$CONNECTIONS" --seconds "$SECS" --query "$sql" --mode future | tee -a "$OUT"
    "${CLIENT_PIN[@]}" "$BIN" --bench "$ADDR" --connections "$CONNECTIONS" --seconds "$SECS" --query "$sql" --mode here | tee -a "$OUT"
    "${CLIENT_PIN[@]}" "$PEER" "$ADDR" "$USER" "$PASS" "$DB" "$CONNECTIONS" "$SECS" "$sql" | tee -a "$OUT"
    if "$VENV/bin/python3" -c 'import tormysql' 2>/dev/null; then
      "${CLIENT_PIN[@]}" "$VENV/bin/python3" bench/mysql_tormysql.py 127.0.0.1 "$PORT" "$USER" "$PASS" "$DB" \
        "$CONNECTIONS" "$SECS" "$sql" | tee -a "$OUT" || echo "tormysql failed (see above)"
    fi
  done
done

echo "== medians of $ROUNDS rounds"
python3 - "$OUT" <<'PY'
import re, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    m = re.match(r"(\S+) [\"'](.+)[\"']: (\d+) queries/s, ([\d.]+) us CPU/query \(([\d.]+) user \+ ([\d.]+) sys\)", line)
    if m:
        runs.setdefault((m.group(2), m.group(1)), []).append(tuple(float(m.group(i)) for i in range(3, 7)))
print("| query | client | queries/s | us CPU/query | user | sys |")
print("| --- | --- | ---: | ---: | ---: | ---: |")
for (sql, client), values in runs.items():
    qps, cpu, user, sys_ = (statistics.median(v[i] for v in values) for i in range(4))
    print(f"| `{sql}` | {client} | {qps:.0f} | {cpu:.1f} | {user:.1f} | {sys_:.1f} |")
PY
rm -f "$OUT"

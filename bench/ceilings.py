"""What libtaos and the server allow, measured in-process with nothing of tdetl's pipeline: the bars
``bench/throughput.py`` holds tdetl's backup and sync against.

- **raw read**: every child table's ``SELECT *`` fetched with ``taos_fetch_raw_block``, the bytes
  untouched, ``--threads`` tables at once (one connection each);
- **raw copy**: the same blocks passed straight to ``taos_write_raw_block_with_fields`` into a copy
  of the tables (created first, not timed), over one connection per thread;
- **decode**: the raw read plus the codec's decode to Arrow (what a backup cannot avoid).

    eval "$(../shared/tdengine/start.sh --env)"
    python -m bench.ceilings --db tp_src            # a database taosBenchmark wrote (meters)

Prints one line per ceiling (``--json`` for the figures); never an assertion.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

from tdetl import rawblock
from tdetl.taos.ddl import ident
from tdetl.taos.native import NativeConnection


def _connect(dsn: str, db: str | None) -> NativeConnection:
    u = urlsplit(dsn)
    return NativeConnection(u.hostname, u.port, u.username or "root", u.password or "taosdata", db)


def _tables(dsn: str, db: str) -> list[str]:
    with _connect(dsn, db) as conn:
        res = conn.query(f"SELECT table_name FROM information_schema.ins_tables WHERE db_name = '{db}'")
        return sorted(str(v) for v in res.table().column(0).to_pylist())


def _spread(tables: list[str], threads: int, work: Callable[[NativeConnection, list[str]], int],
            dsn: str, db: str) -> tuple[float, int]:
    """Seconds and rows of ``work`` over the tables dealt to ``threads`` connections (opened first)."""
    conns = [_connect(dsn, db) for _ in range(threads)]
    shares = [tables[i::threads] for i in range(threads)]
    try:
        with ThreadPoolExecutor(threads) as pool:
            began = time.perf_counter()
            rows = sum(pool.map(work, conns, shares))
            return time.perf_counter() - began, rows
    finally:
        for c in conns:
            c.close()


def raw_read(dsn: str, db: str, tables: list[str], threads: int, decode: bool = False) -> tuple[float, int]:
    def work(conn: NativeConnection, names: list[str]) -> int:
        rows = 0
        for name in names:
            res = conn.query(f"SELECT * FROM {ident(name)}")
            for block in res.blocks():
                rows += int.from_bytes(bytes(block[8:12]), "little")
                if decode:
                    rawblock.decode(block, res.fields, res.precision)
        return rows
    return _spread(tables, threads, work, dsn, db)


def raw_copy(dsn: str, db: str, tables: list[str], threads: int, into: str) -> tuple[float, int]:
    with _connect(dsn, None) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {ident(into)}")
        conn.execute(f"CREATE DATABASE {ident(into)}")
        res = conn.query(f"SHOW CREATE STABLE {ident(db)}.`meters`")
        conn.execute(f"USE {ident(into)}")
        conn.execute(str(res.table().column(1)[0].as_py()).replace(f"`{db}`.", ""))
        for first in range(0, len(tables), 500):
            made = tables[first:first + 500]
            conn.execute("CREATE TABLE " + " ".join(f"{ident(t)} USING meters TAGS (0, 'x')" for t in made))

    def work(conn: NativeConnection, names: list[str]) -> int:
        rows = 0
        with _connect(dsn, into) as out:
            for name in names:
                res = conn.query(f"SELECT * FROM {ident(db)}.{ident(name)}")
                for block in res.blocks():
                    rows += int.from_bytes(bytes(block[8:12]), "little")
                    out.write_block(name, block, res.fields)
        return rows
    try:
        return _spread(tables, threads, work, dsn, db)
    finally:
        with _connect(dsn, None) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {ident(into)}")


def measure(dsn: str, db: str, threads: int) -> dict[str, dict[str, float]]:
    tables = _tables(dsn, db)
    out: dict[str, dict[str, float]] = {}
    for name, run in (("raw read", lambda: raw_read(dsn, db, tables, threads)),
                      ("raw read + decode", lambda: raw_read(dsn, db, tables, threads, decode=True)),
                      ("raw copy", lambda: raw_copy(dsn, db, tables, threads, f"{db}_ceiling"))):
        best = min((run() for _ in range(3)), key=lambda r: r[0])
        out[name] = {"seconds": best[0], "rows": best[1], "rate": best[1] / best[0]}
        print(f"  ceiling {name}: {best[1]:,} rows in {best[0]:.2f} s, {best[1] / best[0] / 1e6:.2f} M rows/s",
              file=sys.stderr)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", default="tp_src", help="a database with a super table `meters` (taosBenchmark's)")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    dsn = os.environ.get("TDETL_TEST_TAOS")
    if not dsn:
        print("needs TDETL_TEST_TAOS: eval \"$(../shared/tdengine/start.sh --env)\"", file=sys.stderr)
        return 2
    figures = measure(dsn, args.db, args.threads)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

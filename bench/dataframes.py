"""DataFrames in and out of TDengine, in-process, each contender in the same run on the same rows:

- read ``SELECT * FROM meters`` into a DataFrame: ``tdetl.query`` (Arrow; also into pandas), taospy
  ``cursor.fetchall()`` + ``pandas.DataFrame``, ``pandas.read_sql`` over taospy's SQLAlchemy dialect,
  taos-ws-py's row fetch, and the raw-fetch ceiling (the server's raw blocks over one native
  connection, not decoded);
- write the same rows from a pandas DataFrame: ``tdetl.write``, taospy ``stmt2`` bound table by table
  from the frame's columns, and ``tdetl.run`` of the same rows from a ``local:`` backup (tdetl's restore).

    eval "$(../shared/tdengine/start.sh --env)"
    python -m bench.dataframes --tables 100 --rows 100000      # 10 M rows (taosBenchmark makes them)

Best of ``--runs`` for tdetl, one run for the slow baselines; every write's row count is checked.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import tdetl

DB, OUT = "bench_df", "bench_df_out"


def _best(name: str, runs: int, fn: Callable[[], Any], check: Callable[[Any], None] | None = None) -> float:
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        got = fn()
        took = time.perf_counter() - t
        if check is not None:
            check(got)
        best = min(best, took)
        print(f"  {name}: {took:.2f} s", file=sys.stderr)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tables", type=int, default=100)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--baseline-runs", type=int, default=1)
    ap.add_argument("--json", type=Path, help="also write the figures here (the docs' benchmark page reads them)")
    args = ap.parse_args(argv)
    native = os.environ.get("TDETL_TEST_TAOS")
    ws = os.environ.get("TDETL_TEST_TAOSWS")
    if not native or not ws:
        print("set the bundled server's environment: eval \"$(../shared/tdengine/start.sh --env)\"", file=sys.stderr)
        return 2
    import pandas as pd
    import sqlalchemy
    import taos
    import taosws

    from tdetl.taos.connect import open_connection

    u, w = urlsplit(native), urlsplit(ws)
    total = args.tables * args.rows
    subprocess.run(["taosBenchmark", "-h", u.hostname or "localhost", "-P", str(u.port or 6030),
                    "-u", u.username or "root", f"-p{u.password or 'taosdata'}", "-t", str(args.tables),
                    "-n", str(args.rows), "-d", DB, "-y",
                    "-o", os.devnull], check=True, capture_output=True)
    sql = "SELECT * FROM meters"
    got: dict[str, float] = {}

    def rows_are(n: int) -> Callable[[Any], None]:
        def check(x: Any) -> None:
            assert len(x) == n, (len(x), n)
        return check

    got["tdetl.query -> pyarrow"] = _best("tdetl.query", args.runs, lambda: tdetl.query(f"{native}/{DB}", sql),
                                          rows_are(total))
    got["tdetl.query -> pandas"] = _best("tdetl.query + to_pandas", args.runs,
                                         lambda: tdetl.query(f"{native}/{DB}", sql).to_pandas(), rows_are(total))
    got["tdetl.query, taos+ws://"] = _best("tdetl.query ws", args.runs, lambda: tdetl.query(f"{ws}/{DB}", sql),
                                           rows_are(total))

    def raw_fetch() -> list[int]:
        from tdetl.dsn import parse_dsn

        with open_connection(parse_dsn(native + "/"), DB) as conn:
            res = conn.query(sql)
            return [0] * sum(1 for _ in res.blocks())  # blocks, not rows: the count is checked below
    blocks = raw_fetch()
    got["raw fetch (ceiling)"] = _best("raw fetch", args.runs, raw_fetch, rows_are(len(blocks)))

    def fetchall_pandas() -> Any:
        conn = taos.connect(host=u.hostname, port=u.port, user=u.username, password=u.password, database=DB)
        try:
            cur = conn.cursor()
            cur.execute(sql)
            rows = cur.fetchall()
            return pd.DataFrame(rows, columns=[d[0] for d in cur.description])
        finally:
            conn.close()
    got["taospy fetchall + pandas"] = _best("taospy fetchall + pandas", args.baseline_runs, fetchall_pandas,
                                            rows_are(total))

    def read_sql() -> Any:
        engine = sqlalchemy.create_engine(f"taos://{u.username}:{u.password}@{u.hostname}:{u.port}/{DB}")
        with engine.connect() as c:
            return pd.read_sql(sqlalchemy.text(sql), c)
    got["pandas.read_sql (taospy SQLAlchemy)"] = _best("pandas.read_sql", args.baseline_runs, read_sql,
                                                       rows_are(total))

    def ws_fetch() -> list[Any]:
        conn = taosws.connect(f"ws://{w.username}:{w.password}@{w.hostname}:{w.port}/{DB}")
        try:
            return list(conn.query(sql))
        finally:
            conn.close()
    got["taos-ws-py fetch"] = _best("taos-ws-py fetch", args.baseline_runs, ws_fetch, rows_are(total))

    # -- writes of the same rows from one pandas frame ---------------------------------------------------
    frame = tdetl.query(f"{native}/{DB}", "SELECT tbname, * FROM meters").to_pandas()

    def drop_out() -> None:
        with open_connection(tdetl.parse_dsn(native + "/")) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {OUT}")
            conn.execute(f"CREATE DATABASE {OUT}")

    def count() -> int:
        return tdetl.query(f"{native}/{OUT}", "SELECT COUNT(*) FROM meters").column(0)[0].as_py()

    def timed_write(name: str, runs: int, fn: Callable[[], Any]) -> float:
        best = float("inf")
        for _ in range(runs):
            drop_out()
            t = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t)
            n = count()
            assert n == total, (name, n, total)
            print(f"  {name}: {time.perf_counter() - t:.2f} s", file=sys.stderr)
        return best

    got["tdetl.write (pandas)"] = timed_write("tdetl.write", args.runs, lambda: tdetl.write(
        frame, f"{native}/{OUT}", stable="meters", table="tbname", tags=["groupid", "location"]))

    def stmt2() -> None:
        conn = taos.connect(host=u.hostname, port=u.port, user=u.username, password=u.password, database=OUT)
        conn.execute("CREATE STABLE IF NOT EXISTS meters (ts TIMESTAMP, current FLOAT, voltage INT, phase FLOAT)"
                     " TAGS (groupid INT, location VARCHAR(24))")
        stmt = conn.statement2("INSERT INTO ? USING meters TAGS (?, ?) VALUES (?, ?, ?, ?)")
        for name, g in frame.groupby("tbname", sort=False):
            ts = ((g["ts"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)).tolist()  # epoch ms
            cols = [ts, g["current"].tolist(), g["voltage"].tolist(), g["phase"].tolist()]
            tags = [int(g["groupid"].iloc[0]), str(g["location"].iloc[0])]
            for i in range(0, len(ts), 10_000):
                stmt.bind_param([name], [tags], [[c[i:i + 10_000] for c in cols]])
                stmt.execute()
        stmt.close()
        conn.close()
    got["taospy stmt2 (pandas)"] = timed_write("taospy stmt2", args.baseline_runs, stmt2)

    backup = Path(tempfile.mkdtemp(prefix="tdetl-bench-df-"))
    try:
        shutil.rmtree(backup)
        tdetl.run(f"{native}/{DB}", f"local:{backup}")
        got["tdetl restore (local: -> taos://)"] = timed_write(
            "tdetl restore", args.runs, lambda: tdetl.run(f"local:{backup}", f"{native}/{OUT}"))
    finally:
        shutil.rmtree(backup, ignore_errors=True)

    if args.json:
        args.json.write_text(json.dumps({"rows": total, "seconds": got}, indent=1))
    print(f"\n{total:,} rows ({args.tables} x {args.rows:,}), in-process, best of {args.runs} for tdetl\n")
    print("| path | seconds | rows/s |")
    print("|---|---|---|")
    for name, secs in got.items():
        print(f"| {name} | {secs:.2f} | {total / secs / 1e6:.2f} M |")
    q, w_ = got["tdetl.query -> pyarrow"], got["tdetl.write (pandas)"]
    print(f"\nquery: {got['taospy fetchall + pandas'] / got['tdetl.query -> pandas']:.1f}x taospy fetchall + pandas"
          f" (into pandas both), {got['raw fetch (ceiling)'] / q:.2f}x the raw-fetch ceiling;"
          f" write: {got['taospy stmt2 (pandas)'] / w_:.1f}x taospy stmt2,"
          f" {got['tdetl restore (local: -> taos://)'] / w_:.2f}x tdetl's restore")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""SQL databases -> TDengine, whole processes in one run: tdetl's ``postgresql://`` and ``mysql://``
sources against the reader alone (ADBC / ConnectorX into Arrow: the source's ceiling) and against
the way a Python user does it without tdetl (psycopg ``COPY ... TO STDOUT`` / PyMySQL, then taospy
``stmt2``).

    eval "$(../shared/tdengine/start.sh --env)"
    python -m bench.sql_sources --rows 10000000          # starts PostgreSQL and MariaDB itself

The same ``--rows`` meters-like rows (100 devices, one row per device per second, an index on the
time as a time-series table has) are loaded into each server; tdetl reads them in its default one-day
windows; every target's row count is checked. Prints a Markdown table; never an assertion.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from datetime import timezone
from pathlib import Path

from tests.sql_servers import MariaDB, Postgres, start_mariadb, start_postgres

from .throughput import PY, Result, Server, _count, _settle, _sql, _timed

DEVICES = 100
MODEL = ('{"model": {"name": "d{device}", "using": "meters", "tags": ["device"],'
         ' "columns": ["ts", "current", "voltage", "phase"]}}')
BEGIN = "2024-01-01T00:00:00Z"  # the rows span rows / 100 seconds from here: the end covers 10 M of them
END = "2024-01-03T00:00:00Z"


def load_postgres(pg: Postgres, rows: int) -> None:
    pg.sql("DROP TABLE IF EXISTS m", "CREATE TABLE m (ts timestamptz, device int, current real, voltage int,"
           " phase double precision)",
           f"INSERT INTO m SELECT timestamptz '2024-01-01 00:00:00+00' + (i / {DEVICES}) * interval '1 second',"
           f" i % {DEVICES}, (i % 1000) / 100.0, 200 + i % 40, (i % 360) / 3.0 FROM generate_series(0, {rows - 1}) i",
           "CREATE INDEX m_ts ON m (ts)", "ANALYZE m")


def load_mariadb(my: MariaDB, rows: int) -> None:
    my.sql("DROP TABLE IF EXISTS m", "CREATE TABLE m (ts datetime(6), device int, current float, voltage int,"
           " phase double)",
           f"INSERT INTO m SELECT timestamp'2024-01-01 00:00:00' + interval (seq DIV {DEVICES}) second,"
           f" seq % {DEVICES}, (seq % 1000) / 100.0, 200 + seq % 40, (seq % 360) / 3.0 FROM seq_0_to_{rows - 1}",
           "CREATE INDEX m_ts ON m (ts)")


# -- the contenders, each run as a process of its own (python -m bench.sql_sources --alone ...) ---------

def reader_alone(kind: str, dsn: str) -> int:
    """Every row into Arrow with the reader tdetl uses, nothing else."""
    if kind == "pg":
        import adbc_driver_postgresql.dbapi as dbapi

        with dbapi.connect(dsn) as conn, conn.cursor() as cur:
            cur.execute("SELECT ts, device, current, voltage, phase FROM m")
            return sum(b.num_rows for b in cur.fetch_record_batch())
    import connectorx

    reader = connectorx.read_sql(dsn, "SELECT ts, device, current, voltage, phase FROM m", return_type="arrow_stream",
                                 batch_size=65536)
    return sum(b.num_rows for b in reader)


def _rows_pg(dsn: str) -> Iterator[tuple]:
    import psycopg

    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        with cur.copy("COPY (SELECT ts, device, current, voltage, phase FROM m) TO STDOUT") as copy:
            copy.set_types(["timestamptz", "int4", "float4", "int4", "float8"])
            yield from copy.rows()


def _rows_my(dsn: str) -> Iterator[tuple]:
    import urllib.parse

    import pymysql
    import pymysql.cursors

    u = urllib.parse.urlsplit(dsn)
    conn = pymysql.connect(host=u.hostname, port=u.port, user=u.username, password=u.password,
                           database=u.path.strip("/"), cursorclass=pymysql.cursors.SSCursor)
    with conn.cursor() as cur:
        cur.execute("SELECT ts, device, current, voltage, phase FROM m")
        yield from cur
    conn.close()


def python_way(kind: str, dsn: str, taos: str, db: str) -> int:
    """What a user writes without tdetl: rows from the driver, grouped per device, bound with taospy's
    stmt2 (the fastest insert taospy has) 10,000 rows at a time."""
    import urllib.parse

    import taos as taospy

    u = urllib.parse.urlsplit(taos)
    conn = taospy.connect(host=u.hostname, port=u.port, user=u.username, password=u.password)
    conn.execute(f"CREATE DATABASE IF NOT EXISTS {db} PRECISION 'us'")
    conn.execute(f"CREATE STABLE IF NOT EXISTS {db}.meters (ts TIMESTAMP, current FLOAT, voltage INT, phase DOUBLE)"
                 " TAGS (device INT)")
    conn.select_db(db)
    stmt = conn.statement2("INSERT INTO ? USING meters TAGS (?) VALUES (?, ?, ?, ?)")
    per: dict[int, list[list]] = {}
    n = 0

    def flush() -> None:
        names = [f"d{d}" for d in per]
        stmt.bind_param(names, [[d] for d in per], [cols for cols in per.values()])
        stmt.execute()
        per.clear()

    rows = _rows_pg(dsn) if kind == "pg" else _rows_my(dsn)
    for ts, device, current, voltage, phase in rows:
        cols = per.get(device)
        if cols is None:
            cols = per[device] = [[], [], [], []]
        us = int((ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)).timestamp() * 1_000_000)
        cols[0].append(us)
        cols[1].append(current)
        cols[2].append(voltage)
        cols[3].append(phase)
        n += 1
        if n % 10_000 == 0:
            flush()
    if per:
        flush()
    stmt.close()
    conn.close()
    return n


# -- the run ------------------------------------------------------------------------------------------

def _measure(name: str, rows: int, cmd: list[str], server: Server, db: str | None, runs: int) -> Result:
    res = Result(name, rows=rows)
    for _ in range(runs):
        if db:
            _sql(server, f"DROP DATABASE IF EXISTS {db}")
            _settle(server, [])
        took, rss = _timed(cmd)
        res.seconds.append(took)
        res.peak_rss_mb = max(res.peak_rss_mb, rss)
        if db and (got := _count(server, db)) != rows:
            raise RuntimeError(f"{name}: the server holds {got} rows, expected {rows}")
        print(f"  {name}: {took:.2f} s", file=sys.stderr)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--python-way", type=int, default=1, help="runs of the slow taospy baseline (0: skip it)")
    ap.add_argument("--json", type=Path, help="also write the figures here (the docs' benchmark page reads them)")
    ap.add_argument("--alone", nargs=2, metavar=("KIND", "DSN"), help=argparse.SUPPRESS)
    ap.add_argument("--python", nargs=4, metavar=("KIND", "DSN", "TAOS", "DB"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.alone:
        print(reader_alone(*args.alone))
        return 0
    if args.python:
        print(python_way(*args.python))
        return 0
    taos = os.environ.get("TDETL_TEST_TAOS")
    if not taos:
        print("set the bundled server's environment: eval \"$(../shared/tdengine/start.sh --env)\"", file=sys.stderr)
        return 2
    server = Server(taos, None)
    pg, stop_pg = start_postgres()
    my, stop_my = start_mariadb()
    results: list[tuple[str, Result, Result, Result | None]] = []
    try:
        t = time.perf_counter()
        load_postgres(pg, args.rows)
        load_mariadb(my, args.rows)
        print(f"  loaded {args.rows:,} rows into each server in {time.perf_counter() - t:.0f} s", file=sys.stderr)
        window = "ts >= '${start}' AND ts < '${end}'"
        for kind, label, src, reader_dsn in (
                ("pg", "PostgreSQL", pg.dsn(sql=f"SELECT ts, device, current, voltage, phase FROM m WHERE {window}",
                                            beginTime=BEGIN, endTime=END),
                 f"postgresql://tdetl:pw@127.0.0.1:{pg.port}/postgres"),
                ("my", "MariaDB", my.dsn(sql="SELECT ts, device, current, voltage, phase FROM m WHERE ts >="
                                             " '${start_no_tz}' AND ts < '${end_no_tz}'", beginTime=BEGIN, endTime=END),
                 f"mysql://tdetl:pw@127.0.0.1:{my.port}/tdetl")):
            alone = _measure(f"{label}: reader alone", args.rows, [PY, "-m", "bench.sql_sources", "--alone", kind,
                                                                    reader_dsn], server, None, args.runs)
            db = f"bench_sql_{kind}"
            ours = _measure(f"{label} -> taos:// (tdetl)", args.rows,
                            [PY, "-m", "tdetl", "run", "-q", "-f", src, "-t", f"{taos}/{db}?assert", "-p", MODEL],
                            server, db, args.runs)
            theirs = None
            if args.python_way:
                baseline_dsn = (f"host=127.0.0.1 port={pg.port} user=tdetl password=pw dbname=postgres" if kind == "pg"
                                else reader_dsn)
                theirs = _measure(f"{label}: driver + taospy stmt2", args.rows,
                                  [PY, "-m", "bench.sql_sources", "--python", kind, baseline_dsn, taos, db + "_py"],
                                  server, db + "_py", args.python_way)
            results.append((label, alone, ours, theirs))
    finally:
        stop_pg()
        stop_my()
    if args.json:
        args.json.write_text(json.dumps({"rows": args.rows, "results": [
            {"source": label, "reader_alone": alone.best, "tdetl": ours.best,
             "python_way": theirs.best if theirs else None} for label, alone, ours, theirs in results]}, indent=1))
    print(f"\n{args.rows:,} rows, best of {args.runs} (whole processes)\n")
    print("| source | reader alone (s) | tdetl -> taos:// (s) | rows/s | vs reader alone | driver + taospy stmt2 (s) |"
          " tdetl speed-up |")
    print("|---|---|---|---|---|---|---|")
    for label, alone, ours, theirs in results:
        py = f"{theirs.best:.2f}" if theirs else "-"
        up = f"{theirs.best / ours.best:.1f}x" if theirs else "-"
        ratio = ours.best / alone.best
        print(f"| {label} | {alone.best:.2f} | {ours.best:.2f} | {ours.rate / 1e6:.2f} M | {ratio:.2f}x the time"
              f" | {py} | {up} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

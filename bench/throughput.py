"""Whole-process throughput against a real TDengine, every path timed in one run next to the
tools it competes with: taosBenchmark's insert modes, taosdump out/in, and tdetl's backup, restore
and sync over the native client and taosAdapter's WebSocket, by query and by TMQ subscription.

    eval "$(../shared/tdengine/start.sh --env)"
    python -m bench.throughput                       # 100 x 100,000 meters rows, best of 3
    python -m bench.throughput --tables 10000 --rows 100 --runs 1   # many small tables

Each timed command is a fresh process, started with the server flushed and idle; the figure is the
best of ``--runs``. Ratios are against the baseline named in each row, measured in the same run.
Prints a Markdown table (``--json`` writes the raw figures too). Never an assertion: a benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

PY = sys.executable
_OWN_RATE = re.compile(r"seconds to insert rows: \d+ .*? ([\d.]+) \(real [\d.]+\) records/second")


@dataclass
class Server:
    native: str  # taos://user:pass@host:port
    ws: str | None

    @property
    def host_port(self) -> tuple[str, int, str, str]:
        u = urlsplit(self.native)
        return u.hostname or "localhost", u.port or 6030, u.username or "root", u.password or "taosdata"


@dataclass
class Result:
    name: str
    seconds: list[float] = field(default_factory=list)
    rows: int = 0
    peak_rss_mb: float = 0.0
    note: str = ""
    own_rate: float = 0.0  # taosBenchmark: the rate it reports for its insert phase (best run)

    @property
    def best(self) -> float:
        return min(self.seconds) if self.seconds else float("nan")

    @property
    def rate(self) -> float:
        return self.rows / self.best if self.seconds else 0.0


def _sql(server: Server, sql: str) -> str:
    host, port, user, password = server.host_port
    out = subprocess.run(["taos", "-h", host, "-P", str(port), "-u", user, f"-p{password}", "-s", sql],
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0 or "DB error" in out.stdout:
        raise RuntimeError(f"taos -s {sql!r}: {out.stdout[-500:]} {out.stderr[-500:]}")
    return out.stdout


def _count(server: Server, db: str) -> int:
    out = _sql(server, f"SELECT COUNT(*) FROM `{db}`.`meters`")
    nums = [line.strip().strip("|").strip() for line in out.splitlines()]
    return next(int(n) for n in nums if n.isdigit())


def _settle(server: Server, dbs: Sequence[str]) -> None:
    """Flush what the server holds in memory and let it go idle, so no run pays for the last."""
    for db in dbs:
        try:
            _sql(server, f"FLUSH DATABASE `{db}`")
        except RuntimeError:
            pass  # the database may not exist (yet)
    time.sleep(2.0)


def _timed(cmd: Sequence[str]) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of one whole process (its output goes to a file: a full pipe would
    stall it)."""
    with tempfile.TemporaryFile() as log:
        start = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        took = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            log.seek(0)
            tail = log.read().decode(errors="replace")[-800:]
            shown = re.sub(r"(?<=:)[^:@\s/]+(?=@)|(?<= -p)\S+", "***", " ".join(cmd))  # no passwords in errors
            raise RuntimeError(f"{shown} exited {proc.returncode}: {tail}")
    return took, usage.ru_maxrss / 1024


def _run(res: Result, server: Server, runs: int, before: Callable[[], None], cmd: Sequence[str],
         settle: Sequence[str], check: Callable[[], int] | None = None) -> Result:
    for _ in range(runs):
        before()
        _settle(server, settle)
        took, rss = _timed(cmd)
        res.seconds.append(took)
        res.peak_rss_mb = max(res.peak_rss_mb, rss)
        if check is not None:
            got = check()
            if got != res.rows:
                raise RuntimeError(f"{res.name}: the server holds {got} rows, expected {res.rows}")
        print(f"  {res.name}: {took:.2f} s", file=sys.stderr)
    return res


def _append(server: Server, db: str, tables: int, rows: int, extra: int, work: Path) -> None:
    """``extra`` more rows in each of taosBenchmark's child tables, after the ones it wrote (it
    starts at 1500000000000 ms, one row per ms)."""
    script = work / "append.sql"
    with script.open("w") as fh:
        for t in range(tables):
            vals = " ".join(f"({1_500_000_000_000 + rows + k}, 1.5, {k % 250}, 0.25)" for k in range(extra))
            fh.write(f"INSERT INTO `{db}`.`d{t}` VALUES {vals};\n")
    host, port, user, password = server.host_port
    subprocess.run(["taos", "-h", host, "-P", str(port), "-u", user, f"-p{password}", "-f", str(script)],
                   capture_output=True, text=True, timeout=600, check=True)


def _dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def measure(server: Server, tables: int, rows: int, runs: int, work: Path) -> list[Result]:
    host, port, user, password = server.host_port
    total = tables * rows
    login = ["-h", host, "-P", str(port), "-u", user, f"-p{password}"]
    src, dst = "tp_src", "tp_dst"
    results: dict[str, Result] = {}

    def drop(*dbs: str) -> Callable[[], None]:
        return lambda: [_sql(server, f"DROP DATABASE IF EXISTS `{d}`") for d in dbs]  # type: ignore[func-returns-value]

    # taosBenchmark's insert modes: the ingest bar (it creates the database and tables itself)
    for mode in ("stmt2", "stmt", "taosc"):
        said = work / f"taosBenchmark-{mode}.txt"  # not ./output.txt
        bench = ["taosBenchmark", *login, "-I", mode, "-t", str(tables), "-n", str(rows), "-d", src, "-y",
                 "-o", str(said)]

        def own_rate(res: Result, said: Path = said) -> int:  # its insert phase's rate, from what it wrote
            found = _OWN_RATE.findall(said.read_text(errors="replace")) if said.exists() else []
            res.own_rate = max([res.own_rate, *(float(r) for r in found)])
            said.unlink(missing_ok=True)
            return _count(server, src)
        res = Result(f"taosBenchmark -I {mode}", rows=total)
        results[f"taosBenchmark -I {mode}"] = _run(res, server, runs, drop(src), bench, [src],
                                                   lambda res=res, own_rate=own_rate: own_rate(res))
        res.note = f"insert phase {res.own_rate / 1e6:.2f} M rows/s (its own figure)"
    # what libtaos and the server allow (bench/ceilings.py), in-process, on the same rows
    ceilings = work / "ceilings.json"
    subprocess.run([PY, "-m", "bench.ceilings", "--db", src, "--json", str(ceilings)], check=True, timeout=1800,
                   cwd=Path(__file__).resolve().parent.parent)
    for name, fig in json.loads(ceilings.read_text()).items():
        results[f"ceiling {name}"] = Result(f"ceiling: {name}", [fig["seconds"]], int(fig["rows"]),
                                            note="in-process, 4 threads")
    # tdetl backup (and the backup the restores read)
    backup = work / "backup"
    tdetl = [PY, "-m", "tdetl", "run", "-q"]
    results["tdetl backup"] = _run(
        Result("tdetl taos:// -> local:", rows=total), server, runs,
        lambda: shutil.rmtree(backup, ignore_errors=True),
        [*tdetl, "-f", f"{server.native}/{src}", "-t", f"local:{backup}"], [src])
    results["tdetl backup"].note = f"backup {_dir_size(backup) / 1e6:.1f} MB"
    # taosdump out and in
    dump = work / "dump"

    def fresh_dump() -> None:
        shutil.rmtree(dump, ignore_errors=True)
        dump.mkdir()
    results["taosdump -o"] = _run(Result("taosdump -o", rows=total), server, runs, fresh_dump,
                                  ["taosdump", *login, "-D", src, "-o", str(dump), "-r", str(work / "dump_out.txt")],
                                  [src])
    results["taosdump -o"].note = f"dump {_dir_size(dump) / 1e6:.1f} MB"
    results["taosdump -i"] = _run(Result("taosdump -i", rows=total), server, runs, drop(dst),
                                  ["taosdump", *login, "-i", str(dump), "-W", f"{src}={dst}",
                                   "-r", str(work / "dump_in.txt")], [dst],
                                  lambda: _count(server, dst))
    # tdetl restore (= ingest from local files) and sync, native and WebSocket
    targets = [("taos://", server.native)] + ([("taos+ws://", server.ws)] if server.ws else [])
    for label, url in targets:
        results[f"tdetl restore {label}"] = _run(
            Result(f"tdetl local: -> {label}", rows=total), server, runs, drop(dst),
            [*tdetl, "-f", f"local:{backup}", "-t", f"{url}/{dst}?assert"], [dst], lambda: _count(server, dst))
    for label, url in targets:
        results[f"tdetl sync {label}"] = _run(
            Result(f"tdetl taos:// -> {label}", rows=total), server, runs, drop(dst),
            [*tdetl, "-f", f"{server.native}/{src}", "-t", f"{url}/{dst}?assert"], [src, dst],
            lambda: _count(server, dst))
    # TMQ: raw replication (tmq_write_raw) and decoded into a backup; each run a fresh consumer group
    topic, group = f"tdetl_{src}_meta", "tdetl_bench"

    def fresh_group(*dbs: str) -> Callable[[], None]:
        def reset() -> None:
            drop(*dbs)()
            try:
                _sql(server, f"DROP CONSUMER GROUP IF EXISTS `{group}` ON `{topic}`")
            except RuntimeError:
                pass  # no topic yet: the first run creates it
        return reset
    tmq_from = [("tmq://", server.native.replace("taos://", "tmq://", 1))]
    if server.ws:
        tmq_from.append(("tmq+ws://", server.ws.replace("taos+ws", "tmq+ws", 1)))
    for (label, url), (_, target) in zip(tmq_from, targets):
        results[f"tdetl tmq {label}"] = _run(
            Result(f"tdetl {label} -> {label.replace('tmq', 'taos')}", rows=total), server, runs, fresh_group(dst),
            [*tdetl, "-f", f"{url}/{src}?group.id={group}&timeout=300ms", "-t", f"{target}/{dst}?assert"],
            [src, dst], lambda: _count(server, dst))
    # a rerun after 1% more rows: the subscription copies only those, a query sync everything again
    extra = max(1, rows // 100)
    _append(server, src, tables, rows, extra, work)
    grown = tables * (rows + extra)
    results["tdetl tmq rerun"] = _run(
        Result("tdetl tmq:// -> taos:// rerun, +1% rows", rows=grown), server, 1, lambda: None,
        [*tdetl, "-f", f"{tmq_from[0][1]}/{src}?group.id={group}&timeout=300ms", "-t", f"{server.native}/{dst}"],
        [src, dst], lambda: _count(server, dst))
    results["tdetl sync rerun"] = _run(
        Result("tdetl taos:// -> taos:// rerun, +1% rows", rows=grown), server, 1, lambda: None,
        [*tdetl, "-f", f"{server.native}/{src}", "-t", f"{server.native}/{dst}"], [src, dst],
        lambda: _count(server, dst))
    results["tdetl tmq rerun"].note = f"copies {tables * extra:,} rows"
    results["tdetl sync rerun"].note = f"copies {grown:,} rows"
    tmq_backup = work / "tmq_backup"

    def fresh_tmq_backup() -> None:
        fresh_group()()
        shutil.rmtree(tmq_backup, ignore_errors=True)
    results["tdetl tmq backup"] = _run(
        Result("tdetl tmq:// -> local:", rows=total), server, runs, fresh_tmq_backup,
        [*tdetl, "-f", f"{tmq_from[0][1]}/{src}?group.id={group}&timeout=300ms", "-t", f"local:{tmq_backup}"],
        [src])
    _sql(server, f"DROP TOPIC IF EXISTS FORCE `{topic}`")
    # the fixed cost of a run: an empty database to a throwaway backup
    empty = work / "empty"
    _sql(server, "CREATE DATABASE IF NOT EXISTS tp_empty")
    results["tdetl fixed cost"] = _run(
        Result("tdetl run, no data", rows=0), server, runs, lambda: shutil.rmtree(empty, ignore_errors=True),
        [*tdetl, "-f", f"{server.native}/tp_empty", "-t", f"local:{empty}"], [])
    drop(src, dst, "tp_empty")()
    return list(results.values())


def table(results: list[Result], tables: int, rows: int) -> str:
    by = {r.name: r for r in results}
    bar = max((r for r in results if r.name.startswith("taosBenchmark")), key=lambda r: r.rate)
    own = max((r.own_rate for r in results if r.name.startswith("taosBenchmark")), default=0.0)
    dump_out, dump_in = by.get("taosdump -o"), by.get("taosdump -i")
    base = {"tdetl local: -> taos://": bar, "tdetl local: -> taos+ws://": bar, "tdetl taos:// -> taos://": bar,
            "tdetl taos:// -> taos+ws://": bar, "tdetl taos:// -> local:": dump_out,
            "tdetl tmq:// -> taos://": bar, "tdetl tmq+ws:// -> taos+ws://": bar, "tdetl tmq:// -> local:": dump_out,
            "taosBenchmark -I stmt2": bar, "taosBenchmark -I stmt": bar, "taosBenchmark -I taosc": bar}
    copy = by.get("ceiling: raw copy")
    ceiling = {"tdetl taos:// -> local:": by.get("ceiling: raw read"), "tdetl taos:// -> taos://": copy,
               "tdetl taos:// -> taos+ws://": copy}
    lines = [f"{tables:,} child tables x {rows:,} rows ({tables * rows:,} rows), best of"
             f" {len(bar.seconds)}, whole processes", "",
             "| path | seconds | rows/s | ratio | peak RSS | note |", "|---|---|---|---|---|---|"]
    for r in results:
        ref = base.get(r.name)
        ratio = ""
        if r.rows and ref is not None and ref is not r:
            ratio = f"{r.rate / ref.rate:.2f}x {ref.name}"
        elif ref is r:
            ratio = "the ingest bar"
        if ref is bar and r.rows and own and not r.name.startswith("taosBenchmark"):
            ratio += f"; {r.rate / own:.2f}x taosBenchmark's best insert phase"
        top = ceiling.get(r.name)
        if top is not None:
            ratio += f"; {r.rate / top.rate:.2f}x {top.name}"
        if r.name == "tdetl local: -> taos://" and dump_in is not None:
            ratio += f"; {r.rate / dump_in.rate:.2f}x taosdump -i"
        query_sync = by.get(r.name.replace("tmq+ws://", "taos://", 1).replace("tmq://", "taos://", 1)) \
            if r.name.startswith("tdetl tmq") else None
        if query_sync is not None and query_sync is not r:
            ratio += f"; {r.rate / query_sync.rate:.2f}x {query_sync.name}"
        rate = f"{r.rate / 1e6:.2f} M" if r.rows else "-"
        rss = f"{r.peak_rss_mb:.0f} MB" if r.peak_rss_mb else "-"
        lines.append(f"| {r.name} | {r.best:.2f} | {rate} | {ratio} | {rss} | {r.note} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tables", type=int, default=100)
    ap.add_argument("--rows", type=int, default=100_000, help="rows per child table")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", type=Path, help="also write the raw figures here")
    args = ap.parse_args(argv)
    native = os.environ.get("TDETL_TEST_TAOS")
    if not native or not shutil.which("taosBenchmark") or not shutil.which("taosdump"):
        print("needs TDETL_TEST_TAOS and taosBenchmark/taosdump on PATH: eval \"$(../shared/tdengine/start.sh"
              " --env)\"", file=sys.stderr)
        return 2
    server = Server(native.rstrip("/"), (os.environ.get("TDETL_TEST_TAOSWS") or "").rstrip("/") or None)
    with tempfile.TemporaryDirectory(prefix="tdetl-throughput-") as tmp:
        results = measure(server, args.tables, args.rows, args.runs, Path(tmp))
    print(table(results, args.tables, args.rows))
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ | {"best": r.best, "rate": r.rate} for r in results], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``tdetl bench``: benchmark-driven tuning. A bounded sample of a real source (``--limit``) goes into a
scratch target once per combination of settings; the table shows rows/s, peak RSS and the server's
CPU where it is visible, and the flags of the fastest. What a trial wrote is removed after it.

Each trial is a process of its own (``python -m tdetl.tune``) handed its run on stdin, so a DSN's
password is never on a command line and each figure is that trial's alone (RSS included).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from .drivers import as_dsn, driver_class
from .dsn import Dsn
from .errors import ConfigError
from .process_exit import leave
from .request import RunRequest
from .taos.connect import open_connection

MAX_TRIALS = 24
DEFAULTS: dict[str, dict[str, list[int]]] = {  # what is tried when the user names nothing, per target kind
    "taos": {"jobs": [1, 4], "writers": [2, 4, 8]},
    "local": {"jobs": [1, 4], "level": [1, 3]},
}
SETTINGS = {"writers": "taos", "batch-size": "taos", "level": "local"}  # DSN parameter -> the target kind it tunes


@dataclass
class Trial:
    settings: dict[str, int]
    seconds: float = 0.0
    rows: int = 0
    peak_rss_mb: float = 0.0
    server_cpu: float | None = None
    error: str = ""

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


@dataclass
class Plan:
    source: str
    target: Dsn
    kind: str  # taos | local
    parser: str | None
    rows: int
    grid: dict[str, list[int]]
    trials: list[Trial] = field(default_factory=list)


def plan(source: str, target: str, parser: str | None, rows: int, chosen: dict[str, list[int] | None]) -> Plan:
    """The trials to run, checked before anything is read or written."""
    src, dst = as_dsn(source), as_dsn(target)
    kind = dst.driver if dst.driver in DEFAULTS else ""
    if not kind:
        raise ConfigError(f"{dst.masked()}: tdetl bench measures taos://, taos+ws:// and local: targets")
    src_kind = driver_class(src.driver, "source")
    if src_kind is not None and src_kind.capabilities.consumer:
        raise ConfigError(f"{src.masked()}: a sample of a {src.driver} source would take its messages from the"
                          " consumer group; bench from a backup of them (local:) instead")
    for name, value in chosen.items():
        if value and SETTINGS.get(name, kind) != kind:
            raise ConfigError(f"--{name}: tunes {SETTINGS[name]} targets, not {dst.driver}:")
    grid = {k: v for k, v in DEFAULTS[kind].items()}
    grid.update({k: v for k, v in chosen.items() if v})
    count = 1
    for values in grid.values():
        count *= len(values)
    if count > MAX_TRIALS:
        raise ConfigError(f"{count} combinations of settings: at most {MAX_TRIALS} (name fewer values)")
    RunRequest(source, _scratch(dst, kind, "x", {}), parser, limit=rows).validate()  # DSNs and parser, now
    return Plan(source, dst, kind, parser, rows, grid)


def _combinations(grid: dict[str, list[int]]) -> Iterator[dict[str, int]]:
    keys = list(grid)
    for values in itertools.product(*(grid[k] for k in keys)):
        yield dict(zip(keys, values))


def _scratch(dst: Dsn, kind: str, where: str, params: dict[str, int]) -> str:
    """The target DSN of one trial: a scratch database on the target's server, or a scratch directory."""
    if kind == "local":
        return f"local:{where}?" + "&".join(f"{k}={v}" for k, v in params.items())
    authority = re.match(r"[^:]+://[^/?]*", dst.text)
    assert authority is not None
    kept = [(k, v) for k, v in dst.params if k not in params and k != "assert"]
    pairs = [f"{quote(k)}={quote(v)}" if v is not None else quote(k) for k, v in kept]
    pairs += [f"{k}={v}" for k, v in params.items()] + ["assert"]
    return f"{authority.group(0)}/{where}?" + "&".join(pairs)


def _server_cpu(dst: Dsn) -> float | None:
    """CPU seconds of the TDengine server processes on this machine (a loopback target), else None."""
    if dst.driver != "taos" or (dst.host or "localhost") not in ("localhost", "127.0.0.1", "::1"):
        return None
    total, tick, seen = 0.0, os.sysconf("SC_CLK_TCK"), False
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
                stat = fh.read()
        except OSError:
            continue
        name, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        if name in ("taosd", "taosadapter"):
            total += (int(rest[11]) + int(rest[12])) / tick
            seen = True
    return total if seen else None


def run_trial(p: Plan, settings: dict[str, int]) -> Trial:
    trial = Trial(settings)
    params = {k: v for k, v in settings.items() if k != "jobs"}
    if p.kind == "local":
        parent = p.target.path if p.target.path.is_dir() else p.target.path.parent
        where = tempfile.mkdtemp(prefix=".tdetl-bench-", dir=parent if parent.is_dir() else None)
        os.rmdir(where)  # a backup goes into a directory it makes
    else:
        where = f"tdetl_bench_{uuid.uuid4().hex[:10]}"
    job = {"source": p.source, "target": _scratch(p.target, p.kind, where, params), "parser": p.parser,
           "jobs": settings.get("jobs"), "limit": p.rows}
    cpu = _server_cpu(p.target)
    try:
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            began = time.perf_counter()
            proc = subprocess.Popen([sys.executable, "-m", "tdetl.tune"], stdin=subprocess.PIPE, stdout=out,
                                    stderr=err, env={"OPENBLAS_NUM_THREADS": "1", **os.environ})
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(job).encode())
            proc.stdin.close()
            _, status, usage = os.wait4(proc.pid, 0)  # the child's own peak RSS
            trial.seconds = time.perf_counter() - began
            proc.returncode = os.waitstatus_to_exitcode(status)
            trial.peak_rss_mb = usage.ru_maxrss / 1024
            out.seek(0)
            err.seek(0)
            if proc.returncode:
                said = err.read().decode(errors="replace").strip().splitlines() or [f"exit {proc.returncode}"]
                trial.error = said[-1][:300]
            else:
                trial.rows = int(json.loads(out.read())["rows_written"])
        after = _server_cpu(p.target)
        trial.server_cpu = after - cpu if after is not None and cpu is not None else None
    finally:
        _remove(p, where)
    return trial


def _remove(p: Plan, where: str) -> None:
    if p.kind == "local":
        shutil.rmtree(where, ignore_errors=True)
        return
    with open_connection(p.target) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS `{where}`")


def report(p: Plan) -> str:
    keys = list(p.grid)
    names = " | ".join(("-j" if k == "jobs" else k) for k in keys)
    head = f"| {names} | rows/s | seconds | peak RSS | server CPU |"
    scratch = "database" if p.kind == "taos" else "directory"
    lines = [f"tdetl bench: {as_dsn(p.source).masked()} -> {p.target.masked()} (a scratch {scratch} per trial,"
             f" removed), up to {p.rows:,} rows each",
             "", head, "|" + "---|" * (len(keys) + 4)]
    for t in p.trials:
        cells = [str(t.settings[k]) for k in keys]
        if t.error:
            lines.append("| " + " | ".join(cells) + f" | failed: {t.error} | | | |")
            continue
        cpu = f"{t.server_cpu:.2f} s" if t.server_cpu is not None else "-"
        lines.append("| " + " | ".join(cells) + f" | {_rate(t.rate)} | {t.seconds:.2f} | {t.peak_rss_mb:.0f} MB"
                     f" | {cpu} |")
    done = [t for t in p.trials if not t.error]
    if done:
        best, worst = max(done, key=lambda t: t.rate), min(done, key=lambda t: t.rate)
        params = "&".join(f"{k}={v}" for k, v in best.settings.items() if k != "jobs")
        flags = f"-j {best.settings['jobs']}" + (f", and {params} in the target DSN" if params else "")
        lines += ["", f"fastest: {flags} ({_rate(best.rate)} rows/s, {best.rate / worst.rate:.2f}x the"
                      " slowest; where trials are close, --runs 3 tells them apart)"]
    return "\n".join(lines)


def bench(source: str, target: str, parser: str | None = None, rows: int = 1_000_000,
          chosen: dict[str, list[int] | None] | None = None, runs: int = 1) -> Plan:
    """Every combination of settings, each the best of ``runs`` trials; one that fails is shown so."""
    p = plan(source, target, parser, rows, chosen or {})
    for settings in _combinations(p.grid):
        tries = [run_trial(p, settings) for _ in range(runs)]
        ok = [t for t in tries if not t.error]
        p.trials.append(min(ok, key=lambda t: t.seconds) if ok else tries[0])
    counts = {t.rows for t in p.trials if not t.error}
    if len(counts) > 1:
        raise ConfigError(f"the trials wrote different numbers of rows ({sorted(counts)}): the source changed"
                          " while measured")
    return p


def _trial_main(argv: Sequence[str] | None = None) -> int:
    """One trial, in a process of its own: the run from stdin; its summary as JSON on stdout."""
    job: dict[str, Any] = json.loads(sys.stdin.read())
    request = RunRequest(job["source"], job["target"], job["parser"], jobs=job["jobs"], limit=job["limit"])
    summary = request.run_here()
    print(json.dumps({"rows_written": summary.rows_written}))
    return 0


if __name__ == "__main__":
    try:
        code = _trial_main()
    except Exception as e:  # one line, as the CLI prints it
        print(f"tdetl: error: {' '.join(str(e).split())[:300]}", file=sys.stderr)
        code = 1
    leave(code)


def _rate(rows_per_second: float) -> str:
    """Millions with two decimals, or thousands for small samples (0.00 M said nothing)."""
    if rows_per_second >= 1e6:
        return f"{rows_per_second / 1e6:.2f} M"
    return f"{rows_per_second / 1e3:.1f} k"

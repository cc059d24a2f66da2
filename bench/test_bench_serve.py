"""``tdetl serve``'s cost over the CLI: a small CSV -> DuckDB task from ``POST /api/tasks`` until the
service reports it finished, against ``tdetl run`` of the same task as a whole process in the same
run (both pay for a fresh Python process: the service starts a worker per task). The idle service
(ten tasks defined, none running) reports its CPU share and RSS in ``extra_info``; its ``GET
/api/tasks`` is what the page polls every 2 s.

    pytest bench/test_bench_serve.py --benchmark-only --benchmark-columns=min,median
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.samples import PARSER, meters
from tests.serve_helpers import Service

ROWS = 1_000


@pytest.fixture(scope="module")
def csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("serve") / "m.csv"
    meters(ROWS, tables=10).write_csv(path)
    return path


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, csv: Path) -> Iterator[Service]:
    s = Service(tmp_path_factory.mktemp("serve-data") / "data", extra=("--files", str(csv.parent))).start()
    yield s
    s.stop()


def _outputs(csv: Path) -> Iterator[Path]:
    n = 0
    while True:
        n += 1
        yield csv.parent / f"out-{os.getpid()}-{n}.duckdb"


def test_baseline_cli_run(benchmark: Any, csv: Path) -> None:
    outs = _outputs(csv)

    def run() -> None:
        subprocess.run([sys.executable, "-m", "tdetl", "run", "-f", f"csv:{csv}", "-t", f"duckdb:{next(outs)}",
                        "--parser", json.dumps(PARSER)], check=True, capture_output=True)
    benchmark.pedantic(run, rounds=5, warmup_rounds=1)


def test_serve_task_created_to_finished(benchmark: Any, service: Service, csv: Path) -> None:
    outs = _outputs(csv)

    def run() -> None:
        r = service.call("POST", "/api/tasks", json={"from": f"csv:{csv}", "to": f"duckdb:{next(outs)}",
                                                      "parser": PARSER})
        r.raise_for_status()
        tid, end = r.json()["id"], time.monotonic() + 60
        while (task := service.call("GET", f"/api/tasks/{tid}").json())["state"] not in ("finished", "failed"):
            assert time.monotonic() < end, task
            time.sleep(0.02)  # finer than the page's 2 s: the figure is the service's, not the polling's
        assert task["state"] == "finished" and task["counters"]["rows_written"] == ROWS, task
    benchmark.pedantic(run, rounds=5, warmup_rounds=1)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_idle_service_list_tasks(benchmark: Any, tmp_path: Path, csv: Path) -> None:
    s = Service(tmp_path / "data", extra=("--files", str(csv.parent))).start()
    try:
        for i in range(10):
            s.call("POST", "/api/tasks", json={"name": f"t{i}", "from": f"csv:{csv}", "to": f"duckdb:{tmp_path}/{i}.db",
                                               "parser": PARSER, "start": False}).raise_for_status()
        assert s.proc is not None
        time.sleep(2)
        cpu0, t0 = _cpu_seconds(s.proc.pid), time.monotonic()
        time.sleep(20)
        cpu1, t1 = _cpu_seconds(s.proc.pid), time.monotonic()
        benchmark.extra_info["idle_cpu_percent"] = round(100 * (cpu1 - cpu0) / (t1 - t0), 2)
        benchmark.extra_info["idle_rss_mib"] = round(_rss_mib(s.proc.pid), 1)
        benchmark.pedantic(lambda: s.call("GET", "/api/tasks").raise_for_status(), rounds=50, warmup_rounds=2)
    finally:
        s.stop()

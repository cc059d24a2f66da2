"""The documentation site (mkdocs.yml, docs/): it builds with ``--strict`` (a broken link, anchor or
missing reference fails), its reference pages are generated from the code (a parameter's help changed
in a spec shows on the page), and every ``sh`` and ``python`` block of the getting-started page and the
guides runs as written against the bundled TDengine and the real brokers and databases the tests
start."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tdetl import reference
from tdetl.drivers import driver_class
from tdetl.params import Spec

from .fakes.opentsdb_server import OpenTSDBServer
from .services import free_port
from .taos_helpers import ANY, drop, taospy_rows
from .taos_helpers import pytestmark as needs_taos

ROOT = Path(__file__).resolve().parent.parent
GUIDES = sorted((ROOT / "docs" / "guides").glob("*.md"))
PAGES = [ROOT / "docs" / "getting-started.md", *GUIDES]  # the pages whose commands a test runs
RUN = re.compile(r"^```(sh|python)\n", re.M)
SAMPLE = 1000  # rows of formats/samples/meters.csv; meters-more.csv adds 110
# What the guides' commands leave in TDengine, read back with taospy (not tdetl's own reader):
# "<db>.<table>": (rows, sum of a column)
HOLDS = {
    "guide_restored.meters": (SAMPLE, "voltage"), "guide_part.meters": (SAMPLE, "voltage"),
    "guide_until.meters": (SAMPLE, "voltage"), "guide_incremental.meters": (SAMPLE + 110, "voltage"),
    "guide_from_parquet.meters": (SAMPLE, "voltage"), "guide_dst.meters": (SAMPLE, "voltage"),
    "guide_renamed.meters": (120, None), "guide_replica.meters": (SAMPLE + 110, "voltage"),
    "guide_ingest.meters": (3, None), "guide_kafka.meters": (SAMPLE, "voltage"), "guide_influx.cpu": (3, None),
    "guide_opentsdb.sys_cpu_user": (3, None), "guide_pg.readings": (2880, None), "guide_mysql.readings": (3, None),
    "guide_undumped.meters": (SAMPLE, "voltage"), "guide_frames.meters_15m": (8, None),
    "guide_api.meters": (SAMPLE, "voltage"), "guide_served.meters": (SAMPLE, "voltage"),
    "guide_wide_copy.meters": (SAMPLE, "voltage"),
}


def test_the_site_builds_strict(tmp_path: Path) -> None:
    site = tmp_path / "site"
    res = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    drivers = (site / "reference" / "drivers" / "index.html").read_text()
    assert "sslrootcert" in drivers and "rebirth_interval" in drivers  # generated from the specs
    assert "query_batches" in (site / "reference" / "python-api" / "index.html").read_text()  # mkdocstrings
    assert "metric-unknown" in (site / "reference" / "situations" / "index.html").read_text()
    assert "/api/tasks/{tid}/start" in (site / "reference" / "service-api" / "index.html").read_text()
    assert not (site / "hooks.py").exists()
    bench = (site / "benchmarks" / "index.html").read_text()
    assert bench.count("<svg") >= 3 and "taosdump -o" in bench  # drawn from bench/results/*.json
    sync = next(f for f in json.loads((ROOT / "bench" / "results" / "throughput.json").read_text())
                if f["name"] == "tdetl taos:// -> taos://")
    migrate = (site / "guides" / "migrate" / "index.html").read_text()
    assert f"<td>{sync['best']:.2f}</td>" in migrate and "<!-- throughput" not in migrate  # quoted, not copied


def test_a_parameter_help_changed_in_a_spec_changes_its_page(monkeypatch: pytest.MonkeyPatch) -> None:
    cls = driver_class("csv", "source")
    assert cls is not None
    changed = Spec(*(dataclasses.replace(p, help="how many lines to skip, changed by a test") if p.name == "skip"
                     else p for p in cls.spec))
    before = reference.drivers_page()
    monkeypatch.setattr(cls, "spec", changed)
    after = reference.drivers_page()
    assert "changed by a test" in after and "changed by a test" not in before


def _blocks(page: Path, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", page.read_text(), re.S | re.M)


def test_every_guide_has_commands_a_test_runs() -> None:
    assert not [g.stem for g in PAGES if not RUN.search(g.read_text())]


def _services(page: str, request: pytest.FixtureRequest, stack: contextlib.ExitStack) -> dict[str, str]:
    """The servers a page's commands name, as the variables the page reads, from the tests' fixtures."""
    if page == "ingest":
        mqtt, kafka = request.getfixturevalue("mosquitto"), request.getfixturevalue("tansu")
        return {"MQTT": f"127.0.0.1:{mqtt.port}", "KAFKA": kafka.bootstrap}
    if page == "other-sources":
        influx, pg, my = (request.getfixturevalue(f) for f in ("influxd", "postgres", "mariadb"))
        tsdb = stack.enter_context(OpenTSDBServer())
        opcua_port = free_port()
        request.getfixturevalue("opcua").start(opcua_port, "--samples", "30", "--period", "0.1")
        return {"INFLUX": f"127.0.0.1:{influx.port}", "OPENTSDB": f"127.0.0.1:{tsdb.port}",
                "OPCUA": f"127.0.0.1:{opcua_port}/etl/", "PG": pg.dsn("postgres"), "MY_HOST": "127.0.0.1",
                "MY_PORT": str(my.port), "MY_USER": my.user, "MY_PASS": "pw", "MY_DB": "tdetl"}
    if page == "serve":
        return {"PORT": str(free_port())}
    return {}


def _check_holds(databases: list[str]) -> None:
    """The rows the page's commands left, read with taospy: counts, and a column's sum against the
    sample file the rows came from (the incremental ones: both sample files)."""
    import polars as pl

    samples = ROOT / "formats" / "samples"
    first = pl.read_csv(samples / "meters.csv")["voltage"].sum()
    both = first + pl.read_csv(samples / "meters-more.csv")["voltage"].sum()
    for where, (rows, column) in HOLDS.items():
        db, table = where.split(".")
        if db not in databases:
            continue
        got = taospy_rows(db, f"SELECT COUNT(*), SUM({column or '1'}) FROM `{table}`")
        assert got[0][0] == rows, (where, got)
        if column:
            assert got[0][1] == (first if rows == SAMPLE else both), (where, got)


@pytest.mark.parametrize("page", [pytest.param(p, marks=needs_taos) for p in PAGES], ids=lambda p: p.stem)
def test_every_guide_command_runs_as_written(page: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The page's ``sh`` blocks run in order as one script (so a later block sees an earlier one's
    variables and files), then each ``python`` block, from a fresh directory holding ``formats/``."""
    sh, py = _blocks(page, "sh"), _blocks(page, "python")
    (tmp_path / "formats").symlink_to(ROOT / "formats")
    databases = sorted(set(re.findall(r"\bguide_\w+", "".join(sh + py))))
    with contextlib.ExitStack() as stack:
        env = {**os.environ, "TAOS": ANY, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
               "TDETL_STATE_DIR": str(tmp_path / "state"), **_services(page.stem, request, stack)}
        drop(*databases)
        try:
            if sh:
                res = subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(sh)], cwd=tmp_path, env=env,
                                     capture_output=True, text=True, timeout=600)
                assert res.returncode == 0, f"{page.name}: {res.stdout[-2000:]} {res.stderr[-3000:]}"
            for block in py:
                res = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, env=env, capture_output=True,
                                     text=True, timeout=600)
                assert res.returncode == 0, f"{page.name}: {res.stderr[-3000:]}"
            _check_holds(databases)
        finally:
            drop(*databases)


def test_the_benchmark_page_follows_the_figures(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Figures measured again change the page: it is drawn from bench/results/, not written."""
    from bench import report

    (tmp_path / "sql_sources.json").write_text(json.dumps({"rows": 10, "results": [
        {"source": "PostgreSQL", "reader_alone": 2.0, "tdetl": 3.0, "python_way": 30.0}]}))
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    page = report.page()
    assert "tdetl takes 1.50x the reader's time, 10.0x faster than driver + taospy stmt2" in page
    assert "<svg" in page and "throughput.json` is not there" in page

    (tmp_path / "throughput.json").write_text(json.dumps([
        {"name": "ceiling: raw copy", "best": 2.0, "rate": 5e6, "note": ""},
        {"name": "tdetl taos:// -> taos://", "best": 2.5, "rate": 4e6, "note": ""}]))
    quoted = report.with_figures("before <!-- throughput: tdetl taos:// -> taos:// --> after")
    assert "| tdetl taos:// -> taos:// | 2.50 | 4.00 M | 0.80x ceiling: raw copy's rows/s |" in quoted
    with pytest.raises(KeyError, match="no figure"):  # a guide quoting a path the run did not measure
        report.with_figures("<!-- throughput: tdetl ftp:// -> taos:// -->")


def test_every_driver_is_walked_through_in_a_guide() -> None:
    from tdetl.drivers import SINKS, SOURCES

    assert set(SOURCES) | set(SINKS) <= set(reference.GUIDES)

"""The documentation site (mkdocs.yml, docs/): it builds with ``--strict`` (a broken link or a missing
reference fails), its reference pages are generated from the code (a parameter's help changed in a
spec shows on the page), and every ``sh`` and ``python`` block of the guides runs as written against
the bundled server."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tdetl import reference
from tdetl.drivers import driver_class
from tdetl.params import Spec

from .taos_helpers import ANY, drop, pytestmark  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
GUIDES = sorted((ROOT / "docs" / "guides").glob("*.md"))
RUN = re.compile(r"^```(sh|python)\n", re.M)
RUNNABLE = [g for g in GUIDES if RUN.search(g.read_text())]
TEXT_ONLY = {"cluster", "ingest", "other-sources", "serve", "tuning"}  # need a Ray cluster, brokers, other
# databases or minutes: their commands are ```text (the drivers' own tests run those paths)
GUIDE_DBS = ("guide_power", "guide_restored", "guide_part", "guide_src", "guide_dst", "guide_frames")


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


def test_which_guides_run_is_a_decision() -> None:
    assert {g.stem for g in GUIDES} - {g.stem for g in RUNNABLE} == TEXT_ONLY


@pytest.mark.parametrize("guide", RUNNABLE, ids=lambda p: p.stem)
def test_every_guide_command_runs_as_written(guide: Path, tmp_path: Path) -> None:
    sh, py = _blocks(guide, "sh"), _blocks(guide, "python")
    (tmp_path / "formats").symlink_to(ROOT / "formats")
    env = {**os.environ, "TAOS": ANY, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "NO_MKDOCS_2_WARNING": "1"}
    drop(*GUIDE_DBS)
    try:
        if sh:
            res = subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(sh)], cwd=tmp_path, env=env,
                                 capture_output=True, text=True, timeout=600)
            assert res.returncode == 0, f"{guide.name}: {res.stdout[-2000:]} {res.stderr[-2000:]}"
        for block in py:
            res = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, env=env, capture_output=True,
                                 text=True, timeout=600)
            assert res.returncode == 0, f"{guide.name}: {res.stderr[-2000:]}"
    finally:
        drop(*GUIDE_DBS)


def test_the_benchmark_page_follows_the_figures(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Figures measured again change the page: it is drawn from bench/results/, not written."""
    import json

    from bench import report

    (tmp_path / "sql_sources.json").write_text(json.dumps({"rows": 10, "results": [
        {"source": "PostgreSQL", "reader_alone": 2.0, "tdetl": 3.0, "python_way": 30.0}]}))
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    page = report.page()
    assert "tdetl takes 1.50x the reader's time, 10.0x faster than driver + taospy stmt2" in page
    assert "<svg" in page and "throughput.json` is not there" in page

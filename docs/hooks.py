"""MkDocs hook: the reference pages are generated from the code at every build (tdetl/reference.py),
the format specs are taken from formats/ and the benchmark page from bench/results/ (bench/report.py),
so none can drift from what tdetl does or what was measured."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

from tdetl.reference import PAGES

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # bench/ (the benchmark page reads its results) is not installed

from bench.report import page as benchmarks_page  # noqa: E402
from bench.report import with_figures  # noqa: E402


def on_files(files: Files, config: Any) -> Files:
    for uri, page in PAGES.items():
        files.append(File.generated(config, uri, content=page()))
    files.append(File.generated(config, "benchmarks.md", content=benchmarks_page()))
    for spec in sorted([*(ROOT / "formats").glob("*.md"), *(ROOT / "formats").glob("*.json")]):
        files.append(File.generated(config, f"reference/formats/{spec.name}", content=spec.read_text()))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    """A guide quotes measured figures as ``<!-- throughput: path; path -->``, filled from
    bench/results/throughput.json, so a page never shows numbers other than the latest run's."""
    return with_figures(markdown)

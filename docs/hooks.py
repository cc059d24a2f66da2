"""MkDocs hook: the reference pages are generated from the code at every build (tdetl/reference.py)
and the format specs are taken from formats/, so neither can drift from what tdetl does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

from tdetl.reference import PAGES

ROOT = Path(__file__).resolve().parent.parent


def on_files(files: Files, config: Any) -> Files:
    for uri, page in PAGES.items():
        files.append(File.generated(config, uri, content=page()))
    for spec in sorted([*(ROOT / "formats").glob("*.md"), *(ROOT / "formats").glob("*.json")]):
        files.append(File.generated(config, f"reference/formats/{spec.name}", content=spec.read_text()))
    return files

"""The parser preview of ``tdetl serve``'s form: sample messages or CSV lines through a parser, as a
run would read them (the message parser, the CSV source itself), shown as the tables, column types
and first rows they make and the situations they meet, before a task is saved. Nothing is written:
an archive choice archives into a directory removed afterwards."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from ..drivers import open_source
from ..errors import ConfigError, ErrorPolicy, TdetlError, shown
from ..model import TableBatch
from ..options import Options
from ..quality import Rejects, Strategies
from ..transform.messages import MessageParser, Messages
from ..transform.parser import load_parser

MAX_SAMPLES = 1000
MAX_TABLES = 20
MAX_ROWS = 20  # rows shown per table


def preview(parser: Any, samples: Any, kind: str, on_error: str = "error") -> dict[str, Any]:
    """``{"tables": [...], "outcomes": {...}, "skipped": [...], "error": line | None}``: with
    ``on_error`` as the task has it; where the run would stop (``error``), the line it would stop
    with, and the tables as the records that pass would make them."""
    if kind not in ("message", "csv"):
        raise ConfigError(f"preview: 'kind' must be message or csv, not {shown(kind, 40)}")
    if not isinstance(samples, list) or not all(isinstance(s, str) for s in samples) or not samples:
        raise ConfigError("preview: 'samples' must be a list of sample messages (or CSV lines, the header first)")
    if len(samples) > MAX_SAMPLES:
        raise ConfigError(f"preview: at most {MAX_SAMPLES:,} samples")
    text = json.dumps(parser) if isinstance(parser, dict) else parser
    if text is not None and not isinstance(text, str):
        raise ConfigError("preview: 'parser' must be the parser JSON (an object) or its text")
    config = load_parser(text) if text else None
    policy = ErrorPolicy.parse(on_error)
    with tempfile.TemporaryDirectory(prefix="tdetl-preview-") as scratch:
        on = config.on if config is not None else Strategies()
        strategies = Strategies(on.chosen, {**on.settings, "archive": scratch})  # archives go nowhere lasting

        def run(policy: ErrorPolicy) -> tuple[list[TableBatch], Rejects]:
            rejects = Rejects(policy, strategies)
            if kind == "message":
                return _messages(config, samples, rejects), rejects
            return _csv(config, samples, rejects, Path(scratch)), rejects

        error = None
        try:
            batches, rejects = run(ErrorPolicy(policy.mode))  # archive:<file> into the scratch directory
        except TdetlError as e:  # what the run would stop with; the rest shown as drop shows it
            error = str(e)
            batches, rejects = run(ErrorPolicy("drop"))
    return {"tables": [_table(b) for b in batches[:MAX_TABLES]], "outcomes": rejects.counts(),
            "skipped": rejects.examples, "error": error}


def _messages(config: Any, samples: list[str], rejects: Rejects) -> list[TableBatch]:
    parser = MessageParser(config, None, "preview")
    n = len(samples)
    msgs = Messages([s.encode() for s in samples], ["preview"] * n, [0] * n, list(range(n)), [None] * n,
                    [int(time.time() * 1000)] * n)
    return parser.parse(msgs, rejects, "preview", None)


def _csv(config: Any, samples: list[str], rejects: Rejects, scratch: Path) -> list[TableBatch]:
    path = scratch / "sample.csv"
    path.write_text("\n".join(samples) + "\n", encoding="utf-8")
    src = open_source(f"csv:{path}", Options(parser=config), rejects)
    try:
        src.catalog()
        return [b for part in src.partitions() for b in src.read(part)]
    finally:
        src.close()


def _table(b: TableBatch) -> dict[str, Any]:
    s = b.spec
    return {"table": s.name, "stable": s.stable, "tags": s.to_json().get("tags", {}),
            "tag_types": {t.name: str(t.type) for t in s.tags},
            "columns": [{"name": c.name, "type": str(c.type)} for c in s.columns], "rows": b.num_rows,
            "first": json.loads(json.dumps(b.data.slice(0, MAX_ROWS).to_pylist(), default=str))}

"""One share of a run's partitions through the ordinary pipeline on a Ray worker."""

from __future__ import annotations

from typing import Any

from ..drivers import as_dsn, open_sink, open_source
from ..errors import TdetlError
from ..pipeline import run as run_pipeline
from ..request import RunRequest


def run_share(recipe: RunRequest, share: str, attempt: str, parts: list[str], resume: dict[str, Any],
              book: Any, existed: frozenset[str] | None) -> dict[str, Any]:
    """The share's counters, or ``{"error": line}`` for a failure a retry would repeat (bad input,
    a refusing server). Each checkpoint goes to ``book``; a consumer's reaches it before the broker
    is told the data is durable (a restarted share must not start before what was committed). Other
    shares do not wait: a restart from an older checkpoint only writes rows again that a TDengine
    target keeps once, and a backup restarts from its own part journal."""
    import ray

    opts = recipe.options()
    opts.partitions = list(parts)
    opts.resume = dict(resume)
    opts.share = attempt
    opts.existed = existed
    waits = [False]

    def durable(at: dict[str, Any], summary: Any) -> None:
        saved = book.save.remote(share, {p: at[p] for p in parts if p in at}, summary.counters())
        if waits[0]:
            ray.get(saved)

    opts.on_durable = durable
    try:
        src = open_source(as_dsn(recipe.source), opts)
        waits[0] = src.consumes
        try:
            sink = open_sink(as_dsn(recipe.target), opts)
        except BaseException:
            src.close()
            raise
        s = run_pipeline(src, sink, opts)
    except TdetlError as e:
        return {"error": str(e)}
    except Exception as e:  # a bug or a library's own error: one line, not retried
        return {"error": f"{type(e).__name__}: {' '.join(str(e).split())}"}
    return {"counters": s.counters(), "tables": s.table_names, "outcomes": s.outcomes, "skipped": s.skipped,
            "partitions_skipped": s.partitions_skipped, "pending": s.rows_pending}

"""One share of a run's partitions through the ordinary pipeline on a Ray worker."""

from __future__ import annotations

from typing import Any

from ..control import Share
from ..errors import TdetlError
from ..request import RunRequest
from ..sink import SharedTarget


def run_share(request: RunRequest, share: str, attempt: str, parts: list[str], resume: dict[str, Any],
              book: Any, existed: frozenset[str] | None, waits: bool) -> dict[str, Any]:
    """The share's counters, or ``{"error": line}`` for a failure a retry would repeat (bad input,
    a refusing server). Each checkpoint goes to ``book``; with ``waits`` (a consumer, whose broker
    is told the data is durable next; an appending target) it reaches the book first, so a
    restarted share does not start before what was committed. Others do not wait: a restart from an
    older checkpoint only writes rows again that the target keeps once, and a backup restarts from
    its own part journal."""
    import ray

    def durable(at: dict[str, Any], summary: Any) -> None:
        saved = book.save.remote(share, {p: at[p] for p in parts if p in at}, summary.counters())
        if waits:
            ray.get(saved)

    try:
        s = request.run_here(Share(frozenset(parts), dict(resume), durable, SharedTarget(attempt, existed)))
    except TdetlError as e:
        return {"error": str(e)}
    except Exception as e:  # a bug or a library's own error: one line, not retried
        return {"error": f"{type(e).__name__}: {' '.join(str(e).split())}"}
    return {"counters": s.counters(), "tables": s.table_names, "outcomes": s.outcomes, "skipped": s.skipped,
            "partitions_skipped": s.partitions_skipped, "pending": s.rows_pending}

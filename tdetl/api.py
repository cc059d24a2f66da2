"""The Python API: :func:`run` and :func:`inspect`, the same jobs the CLI runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .drivers import as_dsn, open_source
from .dsn import Dsn
from .errors import ConfigError, DsnError, ErrorPolicy
from .options import OnArg, make_options
from .params import instant_ns
from .progress import Summary
from .request import RunRequest

if TYPE_CHECKING:
    from .drivers.tmq.subscription import Subscription
    from .transform.parser import ParserConfig


def run(source: str | Dsn, target: str | Dsn, *, parser: str | ParserConfig | None = None,
        transforms: Sequence[str] = (), jobs: int | None = None, on_error: str | ErrorPolicy = "error",
        progress: bool | None = False, batch_rows: int | None = None, on: OnArg = None,
        state: str | None = None, cluster: str | None = None, limit: int | None = None) -> Summary:
    """Move everything ``source`` holds to ``target`` (DSNs as in ``tdetl run -f ... -t ...``).
    ``parser`` is the --parser JSON text or ``@file``; ``on_error`` is error, drop or
    archive:<file>; ``on`` maps situations to choices (``{"ts-null": "drop"}``, as ``--on``).
    ``state`` is ``--state``: a file keeping the checkpoint, so a rerun resumes an interrupted run.
    ``cluster`` (``ray://head:10001``, a Ray address, or ``local``) spreads the partitions over a
    Ray cluster (the ``ray`` extra). ``limit`` stops after that many rows (a sample). Returns the
    run's :class:`Summary` (``complete`` is False when rows wait in the write cache); raises
    :class:`TdetlError` on failure."""
    return start(RunRequest(source, target, parser, tuple(transforms), jobs, on_error, on, batch_rows, state, cluster,
                            progress, limit=limit))


def start(request: RunRequest, summary: Summary | None = None) -> Summary:
    """Start a run: the one way in for the CLI, the API and ``tdetl serve``; a cluster or this process.
    It counts into ``summary`` when given (a caller can tell what was done after an interrupt)."""
    if request.cluster:
        from .cluster import run_on_cluster

        return run_on_cluster(request, summary)
    return request.run_here(summary=summary)


def inspect(source: str | Dsn, *, parser: str | ParserConfig | None = None) -> dict[str, Any]:
    """Tables, schemas, row counts and time ranges of what ``source`` holds, as a dict."""
    from .describe import describe  # pyarrow.compute: only for this command

    opts = make_options(parser)
    src = open_source(as_dsn(source), opts)
    try:
        return describe(src)
    finally:
        src.close()


def subscribe(source: str | Dsn, *, auto_commit: bool = False) -> Subscription:
    """A TMQ subscription (``tmq://`` or ``tmq+ws://``) as an iterator of ``(TableSpec,
    pyarrow.RecordBatch)``; offsets are committed by ``commit()`` (or, with ``auto_commit``, when
    the next message is fetched). Use it as a context manager. Ends after the DSN's ``timeout``."""
    dsn = as_dsn(source)
    if dsn.driver != "tmq":
        raise DsnError(f"{dsn.masked()}: subscribe takes a tmq:// or tmq+ws:// DSN")
    from .drivers.tmq.subscription import Subscription  # pyarrow and the TMQ driver: only for this call

    return Subscription(open_source(dsn, make_options()), auto_commit)  # type: ignore[arg-type]


def verify(a: str | Dsn, b: str | Dsn, *, start: str | None = None, end: str | None = None) -> dict[str, Any]:
    """Compare two endpoints table by table (rows, first/last timestamp, tags, an order-independent
    content checksum), optionally only rows with ``start <= ts < end`` (RFC 3339 with a zone).
    Returns ``{"tables", "rows", "differences": [{"table", "what", ...}]}``; empty differences
    means identical."""
    from .compare import verify as compare  # Polars: only for this command

    return compare(a, b, _instant(start, "--start"), _instant(end, "--end"))


def _instant(text: str | None, where: str) -> int | None:
    if text is None:
        return None
    try:
        return instant_ns(text)
    except ValueError as e:
        raise ConfigError(f"{where}: {e}") from None

"""Source -> transforms -> sink through a bounded queue.

Reader threads (``jobs``) take source partitions in order, transform and split batches, and put
them on a bounded queue (back-pressure: readers wait while the sink is behind). The calling thread
feeds the sink. Each batch may carry its partition's resume position; when the sink flushes, the
positions of everything it has received so far go with the flush, so a rerun continues from there
and no row is written twice.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .control import RunControl, Share
from .errors import ConfigError
from .model import TableBatch
from .options import Options, Transform
from .progress import Progress, Summary
from .readahead import offer
from .sink import Sink
from .source import DONE, Source
from .state import StateFile

log = logging.getLogger("tdetl")

IDLE_FLUSH = 1.0  # seconds without new batches before buffered ones are flushed


@dataclass
class _End:
    partition: str


@dataclass
class _Failed:
    error: BaseException


def split(batch: TableBatch, max_rows: int, max_bytes: int) -> Iterable[TableBatch]:
    """Slices of at most ``max_rows`` rows and about ``max_bytes`` bytes; the position goes with
    the last slice only (zero-copy slices)."""
    n = batch.num_rows
    if n == 0:
        return []
    per_row = max(1, batch.nbytes // n)
    step = max(1, min(max_rows, max_bytes // per_row))
    if n <= step:
        return [batch]
    out = []
    for start in range(0, n, step):
        last = start + step >= n
        out.append(TableBatch(batch.spec, batch.data.slice(start, step), batch.partition,
                              batch.position if last else None))
    return out


def run(source: Source, sink: Sink, options: Options, control: RunControl | None = None) -> Summary:
    """Everything ``source`` gives into ``sink`` (opened with one ledger: tdetl.drivers.open_ends)."""
    control = control or RunControl()
    if sink.rejects is not source.rejects:
        raise ValueError("source and sink must share one ledger (open them with tdetl.drivers.open_ends)")
    share = control.share
    summary = control.summary if control.summary is not None else Summary()
    progress = Progress(summary, control.progress, counts=source.rejects.counts, status=control.status,
                        lag=source.lag)
    direct = source.direct_to(sink)
    if direct is not None:
        return _run_direct(direct, source, sink, summary, progress, _partitions(source, share))
    try:
        todo, state, saved = set_up(source, sink, control, summary, lambda: _partitions(source, share))
    except BaseException:
        source.close()
        raise
    readers = max(1, min(options.jobs or source.capabilities.default_jobs, len(todo)))
    log.info("%s -> %s: %d %s to read with %d readers", source.dsn.masked(), sink.dsn.masked(), len(todo),
             source.capabilities.partitions if len(todo) != 1 else "part", readers)
    if summary.partitions_skipped or state:
        log.info("resuming: %d of %d parts already done", summary.partitions_skipped,
                 summary.partitions_skipped + len(todo))
    checkpoint: dict[str, Any] = dict(state)
    summary.partitions_total = 0 if source.capabilities.consumer else len(todo)
    q: queue.Queue[Any] = queue.Queue(maxsize=max(1, control.queue_size))
    stop = threading.Event()
    lock = threading.Lock()
    pending = list(todo)
    budget = [control.limit]  # rows the readers may still take (--limit), under ``lock``
    limited = threading.Event()

    def allowed(raw: TableBatch) -> TableBatch | None:
        """What --limit still lets through of a batch (called under ``lock``); None once it is spent."""
        left = budget[0]
        if left is None:
            return raw
        if left <= 0:
            limited.set()
            return None
        if raw.num_rows > left:  # cut: the rest of the partition is not read, so no position goes with it
            raw = TableBatch(raw.spec, raw.data.slice(0, left), raw.partition, None)
        budget[0] = left - raw.num_rows
        return raw

    def durable(at: dict[str, Any]) -> None:
        """Flush; then what was flushed is acknowledged to the source and kept in --state."""
        sink.flush(at)
        # the status file (tdetl serve's count of a run killed now) before the checkpoint the rerun
        # resumes from: counted rows never trail what the checkpoint says is done
        progress.write_status(force=True)
        if saved is not None:
            saved.save(at)
        if share is not None:
            share.on_durable(at, summary)
        source.acknowledge(at)

    def put(item: Any) -> bool:
        return offer(q, item, stop)

    def reader() -> None:
        try:
            while not stop.is_set() and not limited.is_set():
                with lock:
                    if not pending:
                        return
                    part = pending.pop(0)
                for got in source.read(part, state.get(part)):
                    with lock:
                        raw = allowed(got)
                        if raw is None:
                            return
                        summary.rows_read += raw.num_rows
                    for b in _transformed(raw, options.transforms):
                        for piece in split(b, options.batch_rows, control.batch_bytes):
                            if not put(piece):
                                return
                if not put(_End(part)):
                    return
        except BaseException as e:  # handed to the sink thread, which raises it
            put(_Failed(e))

    workers = [threading.Thread(target=reader, name=f"tdetl-read-{i}", daemon=True)
               for i in range(readers)] if todo else []
    for w in workers:
        w.start()
    alive = len(workers)
    seen_tables: set[Any] = set()
    dirty, last_write = False, time.monotonic()
    try:
        ended = 0
        while ended < len(todo):
            try:
                item = q.get(timeout=0.05)
            except queue.Empty:
                if dirty and (source.wants_flush() or time.monotonic() - last_write >= IDLE_FLUSH):
                    # readers are idle (e.g. realtime between polls): make what came durable
                    durable(dict(checkpoint))
                    dirty = False
                alive = sum(w.is_alive() for w in workers)
                if alive == 0 and q.empty():
                    break
                progress.update()
                continue
            if isinstance(item, _Failed):
                raise item.error
            if isinstance(item, _End):
                ended += 1
                summary.partitions_done = ended
                checkpoint[item.partition] = DONE
                continue
            sink.write(item)
            dirty, last_write = True, time.monotonic()
            seen_tables.add(item.spec)
            summary.rows_written += item.num_rows
            summary.bytes_written += item.nbytes
            summary.batches_written += 1
            if item.position is not None:
                checkpoint[item.partition] = item.position
            if sink.wants_flush() or (q.empty() and source.wants_flush()):
                log.debug("flush after %d rows", summary.rows_written)
                durable(dict(checkpoint))
                dirty = False
            progress.update()
        if ended < len(todo) and not limited.is_set():
            raise RuntimeError("a reader stopped without finishing its partition")
        if limited.is_set():
            log.info("--limit %d reached: the rest is not read", control.limit)
        sink.flush(dict(checkpoint))
        sink.close()
        if share is not None:
            share.on_durable(dict(checkpoint), summary)
        source.acknowledge(dict(checkpoint))
        if saved is not None:
            saved.finish()
    except BaseException:
        stop.set()
        try:
            sink.abort()
        finally:
            progress.done()
        raise
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=5)
        source.close()
    progress.done()
    summary.tables = len(seen_tables)
    summary.table_names = sorted({f"{s.database or ''}.{s.name}" for s in seen_tables})
    summary.rows_failed = source.rejects.failed
    summary.rows_filtered = source.rejects.filtered
    summary.skipped = list(source.rejects.examples)
    summary.outcomes = source.rejects.counts()
    in_sink = source.rejects.failed_in_sink  # handed over, then taken out by the sink
    summary.rows_pending, of_this_run = sink.pending()
    summary.rows_written -= in_sink + of_this_run
    summary.rows_read += summary.rows_failed - in_sink + summary.rows_filtered  # sources hand on only rows they keep
    summary.elapsed = time.perf_counter() - summary.started
    progress.write_status(force=True)
    return summary


def set_up(source: Source, sink: Sink, control: RunControl, summary: Summary,
           partitions: Callable[[], list[str]]) -> tuple[list[str], dict[str, Any], StateFile | None]:
    """What every run does before data moves, in this process or as a cluster's driver: the
    checkpoint to resume from (the target's own, else --state, else a cluster task's), the target
    prepared. Returns the partitions still to do, the checkpoint and the --state file."""
    share = control.share
    if share is not None:
        sink.shared = share.target  # before resume_state: a backup's share keeps a part journal of its own
    catalog = source.catalog()
    state = sink.resume_state(source.dsn, source.capabilities.appends) or {}
    saved = _state_file(source, sink, control)
    if saved is not None and not state:  # a target that keeps its own (a backup's journal) wins
        state = saved.load()
    if share is not None:  # a cluster task: the driver keeps the checkpoint
        state = dict(share.resume)
    try:
        sink.prepare(catalog)
    except BaseException:
        sink.abort()  # a target that made something (a lock, a directory) before failing takes it back
        raise
    return still_to_do(partitions(), state, summary), state, saved


def still_to_do(partitions: list[str], state: dict[str, Any], summary: Summary) -> list[str]:
    """The partitions a checkpoint has not marked done; those it has are counted as skipped."""
    todo = [p for p in partitions if state.get(p) != DONE]
    summary.partitions_skipped += len(partitions) - len(todo)
    return todo


def _partitions(source: Source, share: Share | None) -> list[str]:
    """The partitions this run reads: all, or those of a cluster task (cut as for a cluster)."""
    if share is None:
        return source.partitions()
    return [p for p in source.spread_partitions() if p in share.partitions]


def _run_direct(direct: Callable[[Summary, Progress, list[str]], None], source: Source, sink: Sink,
                summary: Summary, progress: Progress, partitions: list[str]) -> Summary:
    try:
        direct(summary, progress, partitions)
        sink.close()
    except BaseException:
        try:
            sink.abort()
        finally:
            progress.done()
            source.close()
        raise
    source.close()
    progress.done()
    summary.elapsed = time.perf_counter() - summary.started
    return summary


def _state_file(source: Source, sink: Sink, control: RunControl) -> StateFile | None:
    if not control.state:
        return None
    if not sink.capabilities.durable_flush:
        raise ConfigError(f"--state {control.state}: the {sink.dsn.driver} target makes its data durable only at the"
                          " end of a run, so there is no checkpoint to resume from")
    return StateFile(Path(control.state).expanduser(), source.dsn.without_password(), sink.dsn.without_password())


def _transformed(batch: TableBatch, transforms: list[Transform]) -> Iterable[TableBatch]:
    batches: Iterable[TableBatch] = [batch]
    for t in transforms:
        batches = [out for b in batches for out in t(b)]
    return batches

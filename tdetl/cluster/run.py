"""The driver side of a cluster run: prepare the target once, cut the partitions into shares, hand
them to Ray, keep the checkpoint as shares report it, start again a share whose worker died (from
its last checkpoint, a bounded number of times), and sum up.

Files: a source that reads local files, or a sink that writes a local directory (a ``local:``
backup), needs every node to see the same ones; the run checks before it starts and refuses with
one line when a node does not.

Shares: a partition that may never end (a consumer, a realtime poll) is a task of its own, so all
of them run at once; finite ones (tables, files, windows) go two shares per cluster CPU, so
a slow share does not hold the run and a retried one redoes little.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..control import RunControl
from ..drivers import open_ends
from ..errors import ClusterError
from ..pipeline import set_up
from ..progress import COUNTERS, Progress, Summary
from ..request import RunRequest
from ..sink import Sink
from ..source import Source
from ..state import StateFile
from .checkpoints import Checkpoints
from .task import run_share

log = logging.getLogger("tdetl")

RETRIES = 3  # attempts after the first when a task's worker dies
JOIN_ATTEMPTS = 3
SHARES_PER_CPU = 2


def refuse(sink: Sink, address: str) -> None:
    """Targets that cannot take writers on many machines."""
    where = f"--cluster {address}"
    if not sink.capabilities.durable_flush:
        raise ClusterError(f"{where}: the {sink.dsn.driver} target {sink.dsn.masked()} takes one writer and makes"
                           f" its data durable only at the end of the run; run it without --cluster")


def connect(address: str) -> bool:
    """Joins (or with ``local`` starts) a Ray cluster; True when this call did, so the run ends it."""
    try:
        import ray
    except ImportError:
        raise ClusterError(f"--cluster {address}: Ray is not installed (pip install 'tdetl[ray]')") from None
    if ray.is_initialized():
        return False
    for attempt in range(1, JOIN_ATTEMPTS + 1):
        try:
            with warnings.catch_warnings():  # the client warns before it fails; the failure is the one line
                warnings.simplefilter("ignore")
                if address == "local":
                    ray.init(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
                else:
                    ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
            return True
        except Exception as e:
            reason = " ".join(str(e).split())
            # the head starts a server process per client, which now and then dies at birth: ask again
            if attempt < JOIN_ATTEMPTS and "client server failed" in reason:
                log.warning("--cluster %s: the head could not start a server for this client; trying again", address)
                ray.shutdown()
                time.sleep(1.0)
                continue
            raise ClusterError(f"--cluster {address}: cannot join the cluster: {reason}") from None
    return True


def check_shared(ray: Any, address: str, src: Source, sink: Sink) -> None:
    """Every node that runs shares sees the source's files (same sizes) and writes into the same
    directory as this process (a file it writes here is there)."""
    files = src.local_files() if src.capabilities.local_files else []
    root = sink.local_root() if sink.capabilities.local_files else None
    if not files and root is None:
        return
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe: Path | None = None
    token = uuid.uuid4().hex
    if root is not None:
        base = root
        while not base.exists() and base != base.parent:
            base = base.parent
        probe = base / f".tdetl-shared-{token}"
        try:
            probe.write_text(token, encoding="utf-8")
        except OSError as e:
            raise ClusterError(f"--cluster {address}: cannot write in {base}: {e.strerror}") from None
    expect = [(str(p), p.stat().st_size) for p in files]
    look = ray.remote(num_cpus=0, max_retries=0)(sees)
    try:
        asked = {look.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(
            expect, str(probe) if probe else None, token): n["NodeManagerAddress"]
            for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0}
        for ref, node in asked.items():
            unseen = ray.get(ref, timeout=120)
            if unseen is None:
                continue
            if probe is not None and unseen == str(probe):
                raise ClusterError(f"--cluster {address}: node {node} does not share {root} with this machine;"
                                   f" a {sink.dsn.driver}: target across machines needs a shared filesystem"
                                   " mounted at the same path on every node")
            raise ClusterError(f"--cluster {address}: node {node} does not see {unseen} as this machine does;"
                               " a cluster reads files from a filesystem every node shares")
    finally:
        if probe is not None:
            probe.unlink(missing_ok=True)


def sees(files: list[tuple[str, int]], probe: str | None, token: str) -> str | None:
    """On one node: the first file it does not see as the driver does, or None."""
    if probe is not None:
        try:
            if Path(probe).read_text(encoding="utf-8") != token:
                return probe
        except OSError:
            return probe
    for path, size in files:
        try:
            if Path(path).stat().st_size != size:
                return path
        except OSError:
            return path
    return None


def shares(source: Source, todo: list[str], cpus: int) -> list[list[str]]:
    endless = [[p] for p in todo if source.endless(p)]
    finite = [p for p in todo if not source.endless(p)]
    if not finite:
        return endless
    size = max(1, math.ceil(len(finite) / max(1, cpus * SHARES_PER_CPU)))
    return endless + [finite[i:i + size] for i in range(0, len(finite), size)]


@dataclass
class ShareRun:
    """A share as the driver follows it: its attempts, their counters, its result."""

    name: str
    parts: list[str]
    run: str  # this run's tag: attempts of reruns never share a name
    attempt: int = 1
    live: dict[str, int] = field(default_factory=dict)  # this attempt's counters at its last checkpoint
    carried: dict[str, int] = field(default_factory=dict)  # what attempts whose worker died made durable
    result: dict[str, Any] | None = None

    @property
    def attempt_name(self) -> str:
        return f"{self.name}.{self.attempt}.{self.run}"

    def counted(self) -> dict[str, int]:
        now = self.result["counters"] if self.result else self.live
        return {k: now.get(k, 0) + self.carried.get(k, 0) for k in COUNTERS}


def run_on_cluster(request: RunRequest, summary: Summary | None = None) -> Summary:
    """The run on ``request.cluster``: this process prepares the target and keeps the checkpoint,
    workers run the shares."""
    assert request.cluster is not None
    address, progress, status = request.cluster, request.progress, request.status
    summary = summary if summary is not None else Summary()
    src, sink = open_ends(request.source, request.target, request.options())
    started = False
    try:
        refuse(sink, address)
        started = connect(address)  # before the target is touched: a cluster out of reach leaves nothing made
        import ray

        check_shared(ray, address, src, sink)
        todo, saved, positions = _prepare(src, sink, request.control(), summary)
    except BaseException:
        if started:
            _shutdown()
        raise
    finally:
        src.close()
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        tag = uuid.uuid4().hex[:8]
        cut = [ShareRun(f"share-{i}", parts, tag) for i, parts in enumerate(shares(src, todo, cpus))]
        log.info("%d parts in %d tasks on a cluster of %d CPUs", len(todo), len(cut), cpus)
        shown = Progress(summary, progress, status=status)
        waits = src.capabilities.consumer or not (sink.capabilities.upserts or _gathers(sink))
        try:
            _follow(ray, request.for_worker(), cut, positions, summary, shown, saved, sink, waits)
        except BaseException:
            if _gathers(sink):
                sink.abort()
            raise
        if _gathers(sink):
            sink.close()
        if saved is not None:
            saved.finish()
        retried = sum(s.attempt - 1 for s in cut)
        if retried:
            summary.outcomes["task retried after its worker died"] = retried
        shown.done()
    finally:
        if started:
            _shutdown()
    summary.elapsed = time.perf_counter() - summary.started
    return summary


def _shutdown() -> None:
    import ray

    ray.shutdown()


def _gathers(sink: Sink) -> bool:
    """A sink that writes local files stays open in the driver: at the end it gathers what the
    shares wrote (a backup's part journals into its manifest)."""
    return sink.capabilities.local_files


def _prepare(src: Source, sink: Sink, control: RunControl,
             summary: Summary) -> tuple[list[str], StateFile | None, dict[str, Any]]:
    """The target made ready once (databases, tables), before many workers write to it: the set-up
    of every run, then this process writes nothing more unless it gathers the shares' files."""
    todo, begun, saved = set_up(src, sink, control, summary, src.spread_partitions)
    if not _gathers(sink):
        sink.close()  # nothing more for this process to write
    return todo, saved, dict(begun)


def _follow(ray: Any, request: RunRequest, cut: list[ShareRun], positions: dict[str, Any], summary: Summary,
            shown: Progress, saved: StateFile | None, sink: Sink, waits: bool) -> None:
    """Until every share is back: checkpoints kept (and in --state), progress, retries, the first
    failure raised after the others are cancelled."""
    book = ray.remote(num_cpus=0)(Checkpoints).remote(positions)
    remote = ray.remote(run_share).options(max_retries=0, num_cpus=1)
    running: dict[Any, ShareRun] = {}
    existed = sink.tables_before_run()

    def submit(share: ShareRun, at: dict[str, Any]) -> None:
        resume = {p: at[p] for p in share.parts if p in at}
        running[remote.remote(request, share.name, share.attempt_name, share.parts, resume, book, existed,
                              waits)] = share

    def fail(message: str) -> None:
        for ref in running:
            ray.cancel(ref, force=True)
        raise ClusterError(message)

    for share in cut:
        submit(share, positions)
    asked = None
    while running:
        ready, _ = ray.wait(list(running), num_returns=len(running), timeout=0.5)
        for ref in ready:
            share = running.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayTaskError as e:
                fail(f"{share.name}: {_reason(e)}")
            except ray.exceptions.RayError as e:  # its worker or node died: again, from its last checkpoint
                if share.attempt > RETRIES:
                    fail(f"{share.name}: its worker died {share.attempt} times, the last: {_reason(e)}")
                kept = sink.share_checkpoint(share.attempt_name) or {}  # ahead of the book if it died in between
                share.attempt += 1
                log.warning("%s: its worker died (%s); starting it again from its checkpoint (attempt %d of %d)",
                            share.name, _reason(e), share.attempt, RETRIES + 1)
                submit(share, ray.get(book.restart.remote(share.name, {p: kept[p] for p in share.parts if p in kept})))
                continue
            if "error" in result:
                fail(f"{share.name}: {result['error']}")
            share.result = result
        # the book's view when it has answered: a short run does not wait for the actor to start
        asked = asked or book.snapshot.remote()
        if ray.wait([asked], timeout=0)[0] or (not running and any(s.attempt > 1 for s in cut)):
            snap, asked = ray.get(asked), None
            for s in cut:
                s.live, s.carried = snap["live"].get(s.name, {}), snap["carried"].get(s.name, {})
            if saved is not None:
                saved.save(snap["positions"])
        for k in COUNTERS:
            setattr(summary, k, sum(s.counted()[k] for s in cut))
        shown.update()
    tables: set[str] = set()
    for s in cut:
        assert s.result is not None
        tables.update(s.result["tables"])
        summary.partitions_skipped += s.result["partitions_skipped"]
        summary.rows_pending = max(summary.rows_pending, s.result.get("pending", 0))  # workers may share a cache
        summary.skipped.extend(s.result["skipped"][: max(0, 5 - len(summary.skipped))])
        for k, v in s.result["outcomes"].items():
            summary.outcomes[k] = summary.outcomes.get(k, 0) + v
    summary.tables = len(tables)


def _reason(e: BaseException) -> str:
    """One line for what Ray raised: a worker that died, or a bug's exception."""
    cause = getattr(e, "cause", None)
    if cause is not None:
        return f"{type(cause).__name__}: {' '.join(str(cause).split())}"
    first = next((ln for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
    return f"{type(e).__name__}: {first.strip()}"

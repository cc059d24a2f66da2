"""What a driver can do, declared once next to its spec (as dlt's destination capabilities). The
pipeline, the cluster, the run request, ``tdetl serve`` and ``tdetl drivers`` read it instead of
probing a driver's attributes; ``tests/test_drivers.py`` checks every driver declares its own."""

from __future__ import annotations

from dataclasses import dataclass

PARTITION_KINDS = ("one", "tables", "files", "windows", "consumers", "sessions")


@dataclass(frozen=True)
class SourceCapabilities:
    parser: bool = False  # reads --parser: its tables come from a parser's model (the others refuse one)
    partitions: str = "one"  # what --jobs reads in parallel and a cluster spreads (PARTITION_KINDS)
    default_jobs: int = 1  # readers when --jobs is not given
    consumer: bool = False  # members of a consumer group: all read at once, never ending, committed after a flush
    appends: bool = False  # each run continues the last (a subscription): a backup of it is extended, not refused
    raw: bool = False  # can hand a raw target (tdetl.sink.RawTarget) the server's own messages
    local_files: bool = False  # reads files on the machine it runs on (a cluster checks every node sees them)

    def __post_init__(self) -> None:
        if self.partitions not in PARTITION_KINDS:
            raise ValueError(f"partitions={self.partitions!r}: one of {', '.join(PARTITION_KINDS)}")

    def described(self) -> str:
        """One line for ``tdetl drivers <name>``."""
        said = [f"partitions: {self.partitions}", f"default jobs: {self.default_jobs}"]
        said += [what for on, what in ((self.parser, "reads --parser"), (self.consumer, "consumer group"),
                                       (self.appends, "runs continue each other"),
                                       (self.raw, "raw TMQ messages to a raw target"),
                                       (self.local_files, "local files")) if on]
        return "; ".join(said)


@dataclass(frozen=True)
class SinkCapabilities:
    durable_flush: bool = True  # False: durable only at the end of a run (one transaction, files renamed in place)
    upserts: bool = False  # a row written again replaces itself (TDengine: same table and timestamp)
    raw: bool = False  # takes raw TMQ messages (implements tdetl.sink.RawTarget)
    local_files: bool = False  # writes a directory on the machine it runs on (a cluster checks every node shares it)
    situations: frozenset[str] = frozenset()  # the target-side --on situations it decides (tdetl.quality)

    def described(self) -> str:
        said = ["flushes durably" if self.durable_flush else "durable only at the end of a run",
                "upserts (a row written again replaces itself)" if self.upserts else "appends"]
        said += [what for on, what in ((self.raw, "takes raw TMQ messages"), (self.local_files, "local files"))
                 if on]
        if self.situations:
            said.append("decides --on " + ", ".join(sorted(self.situations)))
        return "; ".join(said)

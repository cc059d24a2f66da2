"""Exception classes and the bad-record policy.

Every error a user can cause is a :class:`TdetlError` whose ``str()`` is one line naming the bad value
and where it came from; the CLI prints exactly that line. Passwords never reach these messages: DSNs
are always rendered through :meth:`tdetl.dsn.Dsn.masked`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


def shown(value: object, limit: int = 200, quote: bool = True) -> str:
    """A value quoted in a message (``repr``) or kept in an archive entry (``quote=False``), bounded:
    a 100 MB value is not echoed whole, its length is said instead."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= limit:
        return repr(text) if quote and isinstance(value, str) else text
    cut = repr(text[:limit]) if quote else text[:limit]
    return f"{cut}… ({len(text):,} characters)"


class TdetlError(Exception):
    """Base of every error caused by input, configuration or a peer; one line, no traceback."""

    def __str__(self) -> str:
        return " ".join(super().__str__().split())


class DsnError(TdetlError):
    """A DSN that does not parse, names an unknown driver, or carries a bad parameter."""


class ConfigError(TdetlError):
    """A bad --parser / -T / option value."""


class DataError(TdetlError):
    """A record that cannot be converted to its target type."""


class BackupError(TdetlError):
    """A backup directory that is missing, incomplete, foreign or corrupt."""


class ClusterError(TdetlError):
    """A cluster (``--cluster``) that cannot be reached, a target it cannot share, a task that failed."""


class SourceError(TdetlError):
    """A source (broker, server) failed: unreachable, refused, misconfigured on its side."""


class SinkError(TdetlError):
    """A target refused data."""


class Unreachable(SinkError):
    """The target stopped answering (not a refusal): every table would fail alike."""


class TaosError(TdetlError):
    """An error code and message from a TDengine server or client library."""

    def __init__(self, code: int, message: str, where: str = "") -> None:
        self.code, self.message = code, message
        prefix = f"{where}: " if where else ""
        super().__init__(f"{prefix}[0x{code & 0xFFFF:04X}] {message}")

    # the server stopped answering: network unavailable, broken link, timeout, vgroup unreachable, vnode stopped
    # ... and a server starting up (0x0130: a native target restarting answers that for a while)
    UNREACHABLE = frozenset({0x000B, 0x0018, 0x0019, 0x0020, 0x0130, 0x0529})
    RERUN_HINT = "; once the server answers again, run the same command again to finish"
    # another client's DDL on the same object is in flight (a cluster's workers creating one super
    # table): conflicting transaction, database in creating status
    CONFLICT = frozenset({0x03D3, 0x0396})

    @property
    def unreachable(self) -> bool:
        return self.code & 0xFFFF in self.UNREACHABLE

    @property
    def conflict(self) -> bool:
        return self.code & 0xFFFF in self.CONFLICT

    @property
    def brief(self) -> str:
        """Code and message without the DSN, for messages that name it already."""
        return " ".join(f"[0x{self.code & 0xFFFF:04X}] {self.message}".split())


EXIT_PERMANENT = 2  # a run failed in a way running it again cannot change (tdetl serve does not restart it)


def temporary(e: BaseException) -> bool:
    """Whether the same run may succeed later without anyone changing anything: a peer that did not
    answer, a transaction in the way, a broker or cluster in trouble. Bad input, configuration,
    credentials or a missing database are permanent. The one place that tells them apart: the
    taos target's retry, the CLI and ``tdetl serve``'s supervisor all ask here."""
    if isinstance(e, TaosError):
        return e.unreachable or e.conflict
    if isinstance(e, (DsnError, ConfigError, DataError, BackupError)):
        return False
    return isinstance(e, (TdetlError, OSError, TimeoutError))


POLICIES = ("error", "drop", "archive")


@dataclass(frozen=True)
class ErrorPolicy:
    """What to do with a bad record: stop (``error``), count and skip (``drop``), or skip and keep
    the record with its reason in a JSON-lines file (``archive``): records that fit no situation of
    :mod:`tdetl.quality`, and the default of those that offer the choice. Configuration only."""

    mode: str = "error"
    archive_path: Path | None = None

    @classmethod
    def parse(cls, text: str) -> ErrorPolicy:
        mode, _, arg = text.partition(":")
        if mode not in POLICIES:
            raise ConfigError(f"--on-error {text!r}: expected error, drop, archive (into the --on archive"
                              " directory) or archive:<file>")
        return cls(mode=mode, archive_path=Path(arg) if arg else None)

"""Data-quality strategies (taosX's exception-handling table): per situation a record or a write can
meet, what the user chose — stop, repair the value, drop or archive the record — and the ledger that
counts each outcome for the summary and the progress line.

``--on <situation>=<choice>`` (repeatable), the parser config's ``"on": {...}`` and the API's
``on={...}`` share these keys, plus settings for the archive, the retry and the write cache. The
generic ``--on-error`` (error | drop | archive:<file>) covers records that fit no situation (a
message that is not JSON, a value a pattern does not match) and is the default of every situation
that offers its choice.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from .errors import ConfigError, DataError, ErrorPolicy, shown
from .params import seconds

REASON_MAX = 600  # characters of a reason shown or kept; a value in it is cut with its length said
VALUE_MAX = 10_000  # characters of one value an archive entry keeps
NAME_MAX = 192  # TDengine's limit on a table name, in bytes (TSDB_TABLE_NAME_LEN - 1)
ILLEGAL_NAME = r"[.`\x00-\x1f\x7f]"  # the server refuses '.', and a backtick cannot be escaped


@dataclass(frozen=True)
class Situation:
    key: str
    choices: tuple[str, ...]  # the default first
    help: str
    arg: str = ""  # a choice that takes ``:<text>``, and its default text


SITUATIONS = {s.key: s for s in (
    Situation("name-too-long", ("error", "truncate", "truncate-and-archive", "archive", "drop"),
              f"a child-table name longer than {NAME_MAX} bytes"),
    Situation("name-illegal", ("error", "replace", "archive", "drop"),
              "a child-table name with '.', '`' or control characters (replace[:<text>], default _)", "replace=_"),
    Situation("name-collision", ("error", "suffix", "merge"),
              "two different source names become one table name once repaired (name-illegal=replace,"
              " name-too-long=truncate): suffix adds _<8 hex of the source name's sha1> to every repaired name,"
              " merge writes both series into one table"),
    Situation("name-var-null", ("error", "skip", "blank", "replace"),
              "a field the child-table name template uses is null (replace:<text>)", "replace="),
    Situation("ts-null", ("error", "now", "archive", "drop"), "the primary timestamp is null"),
    Situation("ts-out-of-keep", ("error", "archive", "drop"),
              "the primary timestamp is older than the target database keeps"),
    Situation("value-too-long", ("error", "truncate", "truncate-and-archive", "widen", "archive", "drop"),
              "a value longer than its column's declared width (widen: ALTER the column)"),
    Situation("field-not-in-stable", ("error", "add-column", "drop-field"),
              "a column or tag the existing super table does not have (add-column: ALTER STABLE ADD)"),
    Situation("tag-invalid", ("error", "null", "archive", "drop"),
              "a tag value the server cannot keep as it is: NaN or infinity in a FLOAT/DOUBLE tag, a NUL"
              " character in a text tag (null: the tag is set NULL; archive/drop: the table's rows go)"),
    Situation("table-missing", ("create", "error"), "the target table does not exist"),
    Situation("type-mismatch", ("error", "archive", "drop", "null"),
              "a value that does not convert to its column's type (text in a numeric column)"),
    Situation("metric-unknown", ("rebirth", "drop", "archive", "error"),
              "a Sparkplug B DATA metric no birth certificate has named (a host started after the births): the"
              " message is dropped; rebirth first asks its edge node to be born again (Node Control/Rebirth)"),
    Situation("unreachable", ("retry", "cache"),
              "the target does not answer: retry with back-off for retry-for, then error; or cache"
              " batches on disk and replay them in order once it is back"),
)}

# decided by the target (it reads the database's keep, the tables' declared types, whether it answers):
# a choice for one of these is refused for a target that does not declare it (Sink.situations)
TARGET_SITUATIONS = frozenset({"ts-out-of-keep", "field-not-in-stable", "table-missing", "tag-invalid",
                               "unreachable"})
TARGET_SETTINGS = frozenset({"retry-for", "cache-dir", "cache-max-bytes"})

# outcome words in the summary: what happened to the records
_DONE = {"error": "failed", "truncate": "truncated", "truncate-and-archive": "truncated+archived",
         "archive": "archived", "drop": "dropped", "replace": "replaced", "skip": "skipped", "blank": "blanked",
         "now": "set to now", "widen": "widened", "add-column": "added columns for", "drop-field": "dropped fields of",
         "create": "created", "suffix": "suffixed", "merge": "merged", "null": "nulled", "retry": "retried",
         "cache": "cached", "rebirth": "dropped, rebirth asked for"}
REMOVES = frozenset({"archive", "drop", "skip", "rebirth"})  # outcomes that take the record out of the data
ARCHIVES = frozenset({"archive", "truncate-and-archive"})


@dataclass(frozen=True)
class Setting:
    key: str
    kind: str  # path | int | duration
    default: Any
    help: str


SETTINGS = {s.key: s for s in (
    Setting("archive", "path", "tdetl-archive", "directory of the archive (JSON lines, rotated)"),
    Setting("archive-file-bytes", "int", 64 << 20, "an archive file is closed at this size"),
    Setting("archive-keep-days", "int", 30, "archive files older than this are deleted (0: kept)"),
    Setting("archive-keep-bytes", "int", 1 << 30, "the oldest archive files go while the archive is larger"),
    Setting("retry-for", "duration", 60.0, "unreachable=retry: how long to keep trying before the error"),
    Setting("cache-dir", "path", "", "unreachable=cache: where batches wait (default: the state directory)"),
    Setting("cache-max-bytes", "int", 1 << 30, "unreachable=cache: beyond this the run stops (nothing lost)"),
)}


@dataclass(frozen=True)
class Strategies:
    """The choices made, validated; situations not named take --on-error's choice where they offer
    it, else their default."""

    chosen: Mapping[str, tuple[str, str | None]] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, items: Iterable[str] | Mapping[str, Any] | None, where: str = "--on") -> Strategies:
        pairs: list[tuple[str, str]] = []
        if isinstance(items, Mapping):
            pairs = [(str(k), str(v)) for k, v in items.items()]
        elif items:
            for item in items:
                key, sep, value = item.partition("=")
                if not sep:
                    raise ConfigError(f"{where} {item!r}: expected <situation>=<choice>, e.g. ts-null=drop")
                pairs.append((key.strip(), value.strip()))
        chosen: dict[str, tuple[str, str | None]] = {}
        settings: dict[str, Any] = {}
        for key, value in pairs:
            if key in SETTINGS:
                settings[key] = _setting(SETTINGS[key], value, where)
                continue
            sit = SITUATIONS.get(key)
            if sit is None:
                raise ConfigError(f"{where} {key}={value}: unknown situation {key!r} (known: "
                                  f"{', '.join([*SITUATIONS, *SETTINGS])})")
            choice, sep, arg = value.partition(":")
            if choice not in sit.choices:
                raise ConfigError(f"{where} {key}={value}: {choice!r} is not a choice for {key}"
                                  f" (choices: {', '.join(sit.choices)})")
            takes = sit.arg.partition("=")[0]
            if sep and choice != takes:
                raise ConfigError(f"{where} {key}={value}: {choice} takes no ':<text>'")
            if choice == takes and sit.arg:
                default = sit.arg.partition("=")[2]
                if not sep and not default:
                    raise ConfigError(f"{where} {key}={value}: {choice} needs the text, e.g. {key}={choice}:unknown")
                arg = arg if sep else default
            chosen[key] = (choice, arg if choice == takes else None)
        return cls(chosen, settings)

    def merged(self, other: Strategies) -> Strategies:
        """These choices, with ``other``'s (given later, e.g. on the command line) winning."""
        return Strategies({**self.chosen, **other.chosen}, {**self.settings, **other.settings})

    def setting(self, key: str) -> Any:
        return self.settings.get(key, SETTINGS[key].default)


def _setting(s: Setting, value: str, where: str) -> Any:
    if s.kind == "path":
        if not value:
            raise ConfigError(f"{where} {s.key}=: needs a directory")
        return value
    if s.kind == "duration":
        got = seconds(value)
        if got is None:
            raise ConfigError(f"{where} {s.key}={value}: expected a duration like 30s or 5m")
        return got
    try:
        n = int(value.replace("_", ""))
    except ValueError:
        raise ConfigError(f"{where} {s.key}={value}: expected a whole number") from None
    if n < 0:
        raise ConfigError(f"{where} {s.key}={value}: must not be negative")
    return n


def describe() -> str:
    """The situations, their choices (default first) and the settings, as ``--on help`` prints them."""
    lines = ["situation            choices (default first)", ""]
    for s in SITUATIONS.values():
        lines.append(f"{s.key:<20} {'|'.join(s.choices)}\n{'':<20} {s.help}")
    lines += ["", "setting              default"]
    for st in SETTINGS.values():
        lines.append(f"{st.key:<20} {st.default!s:<12} {st.help}")
    return "\n".join(lines)


def _bounded(value: Any) -> Any:
    if isinstance(value, (str, bytes)) and len(value) > VALUE_MAX:
        return shown(value if isinstance(value, str) else value.decode("utf-8", "replace"), VALUE_MAX, quote=False)
    return value


class Archive:
    """Rejected records with their reasons as JSON lines: one file (``--on-error archive:<file>``)
    or a directory of rotated files, pruned by age and total size."""

    def __init__(self, path: Path, directory: bool, file_bytes: int = 64 << 20, keep_days: int = 0,
                 keep_bytes: int = 0) -> None:
        self.path, self.directory = path, directory
        self.file_bytes, self.keep_days, self.keep_bytes = file_bytes, keep_days, keep_bytes
        self._current: Path | None = None
        self._lock = threading.Lock()

    def write(self, situation: str, reasons: list[str], records: list[dict[str, Any]]) -> None:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        text = "".join(json.dumps({"time": now, "situation": situation, "reason": r, "record": rec},
                                  default=str, ensure_ascii=False) + "\n" for r, rec in zip(reasons, records))
        with self._lock:
            target = self._target()
            with target.open("a", encoding="utf-8") as fh:
                fh.write(text)

    def _target(self) -> Path:
        if not self.directory:
            return self.path
        cur = self._current
        if cur is not None and cur.exists() and cur.stat().st_size < self.file_bytes:
            return cur
        self.path.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        n = 0
        while (self.path / f"archive-{stamp}-{n}.jsonl").exists():
            n += 1
        self._current = self.path / f"archive-{stamp}-{n}.jsonl"
        self._prune()
        return self._current

    def _prune(self) -> None:
        files = sorted(self.path.glob("archive-*.jsonl"), key=lambda p: p.stat().st_mtime)
        if self.keep_days:
            old = time.time() - self.keep_days * 86400
            for p in [p for p in files if p.stat().st_mtime < old]:
                p.unlink(missing_ok=True)
                files.remove(p)
        if self.keep_bytes:
            total = sum(p.stat().st_size for p in files)
            while files and total > self.keep_bytes:
                p = files.pop(0)
                total -= p.stat().st_size
                p.unlink(missing_ok=True)


class Rejects:
    """One run's ledger of bad records: each situation's choice, what came of the records (counted
    per situation and outcome, never silent), the first few reasons for the CLI, and the archive."""

    EXAMPLES = 5

    def __init__(self, policy: ErrorPolicy | None = None, strategies: Strategies | None = None,
                 defaults: Mapping[str, str] | None = None) -> None:
        self.policy = policy or ErrorPolicy()
        self.strategies = strategies or Strategies()
        self.defaults = dict(defaults or {})
        self.failed = 0  # records taken out of the data
        self.failed_in_sink = 0  # of those, the ones the sink took out (counted as handed over)
        self.filtered = 0  # rows a parser filter removed: not errors, but counted
        self.outcomes: dict[str, int] = {}  # "<situation> <outcome>" -> records
        self.examples: list[str] = []
        self._archive: Archive | None = None
        self._lock = threading.Lock()

    # -- choices ----------------------------------------------------------------------------------

    def choice(self, situation: str) -> str:
        chosen = self.strategies.chosen.get(situation)
        if chosen is not None:
            return chosen[0]
        if situation in self.defaults:
            return self.defaults[situation]
        sit = SITUATIONS[situation]
        mode = self.policy.mode  # --on-error drop|archive, where the situation offers it
        return mode if mode != "error" and mode in sit.choices else sit.choices[0]

    def arg(self, situation: str) -> str:
        chosen = self.strategies.chosen.get(situation)
        if chosen is not None and chosen[1] is not None:
            return chosen[1]
        return SITUATIONS[situation].arg.partition("=")[2]

    # -- outcomes ---------------------------------------------------------------------------------

    def filtered_out(self, n: int) -> None:
        with self._lock:
            self.filtered += n

    def reject(self, reasons: list[str], records: list[dict[str, Any]]) -> None:
        """Bad records of no listed situation (reasons[i] belongs to records[i]): --on-error."""
        if reasons:
            self.handle("bad-record", self.policy.mode, reasons, records)

    def handle(self, situation: str, outcome: str, reasons: list[str], records: list[dict[str, Any]],
               count: int | None = None, in_sink: bool = False) -> None:
        """Record what ``outcome`` did to these records: ``error`` raises the first reason; archive
        outcomes write the records (with their reasons); everything is counted."""
        n = len(reasons) if count is None else count
        if not n:
            return
        reasons = [r if len(r) <= REASON_MAX else shown(r, REASON_MAX, quote=False) for r in reasons]
        records = [{k: _bounded(v) for k, v in rec.items()} for rec in records]
        if outcome == "error":
            more = f" (and {n - 1} more in this batch)" if n > 1 else ""
            others = [c for c in SITUATIONS[situation].choices if c != "error"] if situation in SITUATIONS else []
            hint = f"; --on {situation}=<{'|'.join(others)}> handles it" if others else ""
            raise DataError(reasons[0] + more + hint)
        with self._lock:
            key = f"{situation} {_DONE.get(outcome, outcome)}"
            self.outcomes[key] = self.outcomes.get(key, 0) + n
            if outcome in REMOVES:
                self.failed += n
                self.failed_in_sink += n if in_sink else 0
                self.examples.extend(reasons[: max(0, self.EXAMPLES - len(self.examples))])
        if outcome in ARCHIVES and records:
            self.archive().write(situation, reasons, records)

    def archive(self) -> Archive:
        with self._lock:
            if self._archive is None:
                legacy = self.policy.archive_path
                if legacy is not None and "archive" not in self.strategies.settings:
                    self._archive = Archive(legacy, directory=False)
                else:
                    s = self.strategies
                    self._archive = Archive(Path(s.setting("archive")).expanduser(), True,
                                            s.setting("archive-file-bytes"), s.setting("archive-keep-days"),
                                            s.setting("archive-keep-bytes"))
            return self._archive

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self.outcomes)


# -- vectorised repairs shared by the parser (Polars, through Arrow) and the sinks (Arrow) ---------

def truncate_chars(s: Any, max_bytes: int | None, max_chars: int | None = None) -> Any:
    """A Polars string Series cut to ``max_chars`` characters, or to at most ``max_bytes`` UTF-8
    bytes on a character boundary (VARCHAR widths and table names count bytes): cut to that many
    characters, then drop characters while still too long."""
    import polars as pl  # only when something is too long

    if max_bytes is None:
        return s.str.slice(0, max_chars)
    s = s.str.slice(0, max_bytes)
    while True:  # each round removes a quarter of the excess or more (a character is <= 4 bytes)
        excess = s.str.len_bytes().cast(pl.Int64) - max_bytes
        if not (excess > 0).any():
            break
        keep = s.str.len_chars().cast(pl.Int64) - (excess + 3) // 4
        s = pl.select(pl.when(excess > 0).then(s.str.slice(0, keep.clip(0))).otherwise(s)).to_series()
    return s


def too_long(arr: pa.Array, type_name: str, length: int) -> pa.Array:
    """Which values exceed a declared width: NCHAR counts characters, the others bytes."""
    import pyarrow.compute as pc  # not at import: every command imports this module

    if type_name == "NCHAR":
        return pc.fill_null(pc.greater(pc.utf8_length(arr), length), False)
    return pc.fill_null(pc.greater(pc.binary_length(arr), length), False)


def truncate(arr: pa.Array, type_name: str, length: int) -> pa.Array:
    """Values cut to a declared width: NCHAR in characters, VARCHAR in bytes on a character
    boundary, binary types in bytes."""
    import polars as pl

    s = pl.Series(arr)
    if s.dtype == pl.String:
        cut = truncate_chars(s, None, length) if type_name == "NCHAR" else truncate_chars(s, length)
    else:
        cut = s.bin.slice(0, length)
    return cut.to_arrow().cast(arr.type)

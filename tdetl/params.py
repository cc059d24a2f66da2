"""Driver parameters, declared once per driver: what each DSN parameter is called (and its taosX
aliases), its kind, default, bounds and one help line. The same declaration parses and validates a
DSN into a frozen :class:`Config`, refuses unknown or malformed parameters naming the driver and the
accepted form, masks secrets, and prints ``tdetl drivers``.

Durations take a unit suffix (``500ms``, ``5s``, ``10m``, ``1h``, ``2d``) everywhere; a bare number
means the parameter's own unit (seconds, or milliseconds where taosX documents it so, as Kafka's
``timeout``). ``never`` is accepted where a parameter says so and gives ``None``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .dsn import SECRET_PARAMS, Dsn
from .errors import DsnError, shown

KINDS = ("text", "int", "float", "duration", "flag", "choice", "list", "file", "instant")
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_TRUE, _FALSE = {"", "1", "true", "yes", "on"}, {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Param:
    """One parameter. ``kind``: text, int, float, duration (seconds as float), flag, choice, list
    (comma-separated, repeatable, ``@file`` one per line), file (``@path`` replaced by the file's
    text), instant (RFC 3339 with a zone; epoch nanoseconds)."""

    name: str
    kind: str = "text"
    default: Any = None
    help: str = ""
    secret: bool = False
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    aliases: tuple[str, ...] = ()
    unit: str = "s"  # duration: what a bare number means
    never: bool = False  # duration: "never" gives None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"parameter {self.name}: unknown kind {self.kind!r}")

    @property
    def form(self) -> str:
        """The accepted form, as errors and ``tdetl drivers`` show it."""
        if self.kind == "choice":
            return "|".join(self.choices)
        if self.kind == "duration":
            bare = "ms" if self.unit == "ms" else "s"
            return f"duration like 500ms, 5s, 10m (bare number: {bare}){' or never' if self.never else ''}"
        if self.kind == "int":
            return "integer" + (f" >= {self.minimum:g}" if self.minimum is not None else "")
        if self.kind == "float":
            return "number" + (f" >= {self.minimum:g}" if self.minimum is not None else "")
        return {"flag": "flag (true/false; alone means true)", "list": "a,b,c (repeatable, or @file)",
                "file": "@path (or the text itself)", "instant": "RFC 3339 time with a zone"}.get(self.kind, "text")

    def parse(self, dsn: Dsn, key: str, driver: str) -> Any:
        """This parameter's value in ``dsn``, where it is given as ``key`` (its name or an alias)."""
        raw = dsn.get(key)
        if self.kind == "list":
            return tuple(dsn.get_all(key))
        if raw is None:
            return self.default
        if self.kind == "flag":
            if raw.lower() in _TRUE:
                return True
            if raw.lower() in _FALSE:
                return False
            raise self._bad(dsn, driver, raw)
        if self.kind == "file":
            return dsn.value(key)
        if self.kind == "instant" and raw:
            try:
                return instant_ns(raw)
            except ValueError as e:
                raise DsnError(f"{dsn.masked()}: {driver} parameter {self.name}: {e}") from None
        if raw == "" and self.kind != "text":
            return self.default
        if self.kind == "choice":
            if raw not in self.choices:
                raise self._bad(dsn, driver, raw)
            return raw
        if self.kind == "duration":
            if self.never and raw.strip().lower() == "never":
                return None
            parsed = seconds(raw, self.unit)
            if parsed is None:
                raise self._bad(dsn, driver, raw)
            value = parsed
        elif self.kind in ("int", "float"):
            try:
                value = int(raw.replace("_", "")) if self.kind == "int" else float(raw)
            except ValueError:
                raise self._bad(dsn, driver, raw) from None
        else:
            return raw
        if self.minimum is not None and value < self.minimum:
            raise self._bad(dsn, driver, raw)
        return value

    def _bad(self, dsn: Dsn, driver: str, raw: str) -> DsnError:
        shown = "***" if self.secret else repr(raw)
        return DsnError(f"{dsn.masked()}: {driver} parameter {self.name}={shown} is not valid:"
                        f" expected {self.form}")


def instant_ns(text: str) -> int:
    """Nanoseconds since the epoch from RFC 3339 with a zone: ``2023-06-01T00:00:00+08:00``, the seed's
    ``+0800``, ``Z``, up to nine fraction digits; a ``+`` that arrived as a space (unescaped in a URL)
    is read as ``+``. ValueError names what is wrong."""
    t = re.sub(r" (\d\d:?\d\d)$", r"+\1", text.strip()).replace("Z", "+00:00").replace("z", "+00:00")
    frac = "0"
    m = re.search(r"\d\d:\d\d:\d\d\.(\d{1,9})(?!\d)", t)
    if m:  # datetime keeps microseconds only: the digits are taken here
        frac, t = m.group(1), t[:m.start(1) - 1] + t[m.end(1):]
    try:
        dt = datetime.fromisoformat(t)
    except ValueError:
        raise ValueError(f"{text!r} is not a time like 2023-06-01T00:00:00+08:00") from None
    if dt.tzinfo is None:
        raise ValueError(f"{text!r} needs a zone (Z, +08:00 or +0800)")
    return int(dt.timestamp()) * 1_000_000_000 + int(frac.ljust(9, "0"))


def seconds(text: str, unit: str = "s") -> float | None:
    """A duration's seconds (``500ms``, ``5s``, a bare number in ``unit``), or None if it is not one."""
    m = _DURATION.fullmatch(text)
    return float(m.group(1)) * _SECONDS[m.group(2) or unit] if m else None


class Config(Mapping[str, Any]):
    """A driver's parameters, parsed: read-only, keyed by the canonical names."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Config({self._values!r})"


class Spec:
    """The parameters of one driver, from groups written once and shared."""

    def __init__(self, *groups: Param | Iterable[Param]) -> None:
        params: list[Param] = []
        for g in groups:
            params.extend([g] if isinstance(g, Param) else g)
        self.params: tuple[Param, ...] = tuple(params)
        self._by_key: dict[str, Param] = {}
        for p in self.params:
            for key in (p.name, *p.aliases):
                if key in self._by_key:
                    raise ValueError(f"parameter {key} declared twice")
                self._by_key[key] = p
        SECRET_PARAMS.update(self.secrets)  # masked in every DSN shown from now on

    def __iter__(self) -> Iterator[Param]:
        return iter(self.params)

    def __contains__(self, name: object) -> bool:
        return name in self._by_key

    @property
    def secrets(self) -> frozenset[str]:
        return frozenset(k for p in self.params if p.secret for k in (p.name, *p.aliases))

    def parse(self, dsn: Dsn, driver: str | None = None) -> Config:
        """Every parameter of ``dsn``, typed; the first unknown or malformed one is an error."""
        where = dsn.masked()
        for key, _ in dsn.params:
            if key not in self._by_key:
                known = ", ".join(p.name for p in self.params) or "none"
                near = difflib.get_close_matches(key, list(self._by_key), n=1, cutoff=0.6)
                hint = f"did you mean {near[0]!r}? " if near else ""
                raise DsnError(f"{where}: unknown parameter {shown(key, 60)} for {driver or dsn.scheme} ({hint}known:"
                               f" {known}; see tdetl drivers {dsn.driver})")
        values: dict[str, Any] = {}
        for p in self.params:
            key = next((k for k in (p.name, *p.aliases) if dsn.has(k)), p.name)
            values[p.name] = p.parse(dsn, key, driver or dsn.scheme)
        return Config(values)


# -- groups shared by several drivers ------------------------------------------------------------

def batching(size: int, timeout: float, what: str = "rows") -> tuple[Param, ...]:
    return (Param("batch_size", "int", size, f"{what} per batch", minimum=1),
            Param("batch_timeout", "duration", timeout, "flush a partial batch after this long"))


IDLE = Param("timeout", "duration", None, "idle time before the run ends (never: run until stopped)",
             never=True)
DATABASE = Param("database", "text", None, "target database name carried with the tables (the target DSN's"
                                           " database wins)")
TLS = (Param("ca", "file", None, "CA certificate (PEM, @path)"),
       Param("cert", "file", None, "client certificate (PEM, @path)"),
       Param("cert_key", "file", None, "client private key (PEM, @path)", secret=True))
TIME_RANGE = (
    Param("beginTime", "instant", None, "first time to read (required), e.g. 2023-06-01T00:00:00+0800"),
    Param("endTime", "instant", None, "end of the range (exclusive); without it, keep reading each window"
                                      " once it has closed"),
    Param("readWindow", "text", "M", "D, H, M or a duration such as 10s: the span of one query"),
    Param("tbname", "text", None, "child table name template such as {tag}_{tag} (default t_<md5 of the"
                                  " series key>)"),
    IDLE,
)

"""DSN grammar shared with taosX.

``<driver>[+<protocol>]://[[<user>:<password>@]<host>:<port>][/<object>][?<p1>=<v1>[&...]]`` plus the
short forms ``local:/path``, ``csv:./file.csv.gz`` and ``taos:///db``. Parameters keep their order and
repeats; a key without ``=`` is a flag (``?assert``); a value ``@path`` is read from that file on
request (:meth:`Dsn.value`). Every message renders the DSN through :meth:`Dsn.masked`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import unquote

from .errors import DsnError

_RELATIVE_TO: ContextVar[Path | None] = ContextVar("tdetl_relative_to", default=None)


def user_path(text: str) -> Path:
    """A path a user wrote (``@file``). Inside :func:`paths_relative_to` a relative one resolves
    against that directory: ``tdetl serve`` checks a task's files where the task's process will run,
    not where the service runs."""
    path = Path(text).expanduser()
    base = _RELATIVE_TO.get()
    return base / path if base is not None and not path.is_absolute() else path


@contextmanager
def paths_relative_to(base: Path) -> Iterator[None]:
    token = _RELATIVE_TO.set(base)
    try:
        yield
    finally:
        _RELATIVE_TO.reset(token)

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9_-]*)(?:\+([A-Za-z][A-Za-z0-9_-]*))?:")


@dataclass(frozen=True)
class Dsn:
    driver: str
    protocol: str | None = None
    user: str | None = None
    password: str | None = None
    host: str | None = None
    port: int | None = None
    object: str = ""
    params: tuple[tuple[str, str | None], ...] = field(default=())
    text: str = field(default="", compare=False)
    raw_path: str = field(default="", compare=False)

    @property
    def path(self) -> Path:
        """The object as a filesystem path: ``local:/a``, ``local:///a`` and ``csv:./f.csv`` all work."""
        if not self.raw_path:
            raise DsnError(f"{self.masked()}: no path given")
        return Path(self.raw_path).expanduser()

    @property
    def scheme(self) -> str:
        return f"{self.driver}+{self.protocol}" if self.protocol else self.driver

    def masked(self) -> str:
        """The DSN as written, with the password replaced by ``***``."""
        return _mask_text(self.text)

    def without_password(self) -> str:
        """The DSN as written, with the password and every secret parameter removed (what backups,
        journals, caches and state files record)."""
        names = "|".join(re.escape(n) for n in sorted(SECRET_PARAMS))
        text = re.sub(rf"([?&])(?:{names})(?:=[^&]*)?(&|$)", lambda m: m.group(1) if m.group(2) else "", self.text)
        text = text[:-1] if text.endswith(("?", "&")) else text
        return _CREDENTIALS.sub(lambda m: f"{m.group(1)}{m.group(2)}@{m.group(4)}", text, count=1)

    def with_object(self, obj: str) -> Dsn:
        """The same DSN naming another object (``taos://host:6030`` -> ``taos://host:6030/db``)."""
        base, sep, query = self.text.partition("?")
        return replace(self, object=obj, raw_path=obj, text=f"{base.rstrip('/')}/{obj}{sep}{query}")

    def has(self, key: str) -> bool:
        return any(k == key for k, _ in self.params)

    def get(self, key: str, default: str | None = None) -> str | None:
        """Last value given for ``key`` (a flag gives ``""``)."""
        found = [v for k, v in self.params if k == key]
        if not found:
            return default
        return "" if found[-1] is None else found[-1]

    def get_all(self, key: str) -> list[str]:
        """Every value of a repeatable key, comma lists split, ``@file`` lists read one per line."""
        out: list[str] = []
        for k, v in self.params:
            if k != key or not v:
                continue
            if v.startswith("@"):
                out.extend(ln.strip() for ln in self._read_file(key, v).splitlines() if ln.strip())
            else:
                out.extend(p.strip() for p in v.split(",") if p.strip())
        return out

    def value(self, key: str, default: str | None = None) -> str | None:
        """Like :meth:`get`, but ``@path`` is replaced by the file's text."""
        v = self.get(key, default)
        if v is not None and v.startswith("@"):
            return self._read_file(key, v)
        return v

    def _read_file(self, key: str, v: str) -> str:
        path = user_path(v[1:])
        try:
            return path.read_text(encoding="utf-8")
        except OSError as e:
            raise DsnError(f"{self.masked()}: parameter {key}: cannot read {path}: {e.strerror}") from None


SECRET_PARAMS: set[str] = {"password", "token"}  # grown by every driver spec's secret parameters

# ``scheme://user:password@host:port``: the password runs to the last ``@`` that is followed by a
# host[:port] and then ``/``, ``?`` or the end, so a raw ``/`` or ``@`` in it stays in it (both may
# also be percent-encoded, as ``%2F`` and ``%40``); a ``?`` in a password must be encoded.
_CREDENTIALS = re.compile(r"^([A-Za-z][A-Za-z0-9_+-]*:/{2})([^:/@?]*)(?::([^?]*))?@([^/@?]*)(?=[/?]|$)")


def _mask_text(text: str) -> str:
    """Passwords out: ``user:***@`` and the value of every secret parameter (``password=``, ``token=``,
    and what driver specs declare secret)."""
    names = "|".join(re.escape(n) for n in sorted(SECRET_PARAMS))
    text = re.sub(rf"([?&](?:{names})=)[^&]*", r"\1***", text)
    hidden = lambda m: f"{m.group(1)}{m.group(2)}{'' if m.group(3) is None else ':***'}@{m.group(4)}"  # noqa: E731
    return _CREDENTIALS.sub(hidden, text, count=1)


def parse_dsn(text: str) -> Dsn:
    """Parse a DSN; errors name the DSN with its password masked."""
    shown = _mask_text(text)
    m = _SCHEME.match(text)
    if not m or len(m.group(1)) < 2:  # a single letter is a Windows drive, not a driver
        raise DsnError(f"malformed DSN {shown!r}: expected <driver>[+<protocol>]://... or <driver>:<path>")
    driver, protocol = m.group(1).lower(), (m.group(2) or "").lower() or None
    rest = text[m.end():]
    query = ""
    if "?" in rest:
        rest, query = rest.split("?", 1)
    user = password = host = None
    port: int | None = None
    if rest.startswith("//"):
        cred = _CREDENTIALS.match(text[: m.end()] + rest)
        if cred:
            user, pw = unquote(cred.group(2)) or None, cred.group(3)
            password = unquote(pw) if pw is not None else None
            rest = "//" + rest[cred.start(4) - m.end():]
        authority, slash, obj = rest[2:].partition("/")
        if authority:
            if authority.startswith("["):
                h, _, p = authority[1:].partition("]")
                p = p[1:] if p.startswith(":") else p
            else:
                h, _, p = authority.rpartition(":") if ":" in authority else (authority, "", "")
            if p:
                if not p.isdigit() or not 0 < int(p) < 65536:
                    raise DsnError(f"malformed DSN {shown!r}: port {p!r} is not a number in 1..65535")
                port = int(p)
            host = h or None
        obj = unquote(obj)
        raw_path = ("/" + obj) if slash and host is None else obj
    else:
        obj = raw_path = unquote(rest)
    params: list[tuple[str, str | None]] = []
    if query:
        for part in query.split("&"):
            if not part:
                continue
            k, eq, v = part.partition("=")
            k = unquote(k.replace("+", " "))
            if not k:
                raise DsnError(f"malformed DSN {shown!r}: parameter {part!r} has no name")
            params.append((k, unquote(v) if eq else None))
    return Dsn(driver, protocol, user, password, host, port, obj, tuple(params), text, raw_path)

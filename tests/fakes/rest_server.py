"""An in-test TDengine REST endpoint (``POST /rest/sql[/<db>]``) for the protocol tests.

It follows the documented reply formats — 3.x ``{"code":0,"column_meta":[[name,"TYPE",len]],
"data":[...],"rows":n}`` with RFC3339 timestamps in a +08:00 zone, 2.x ``{"status":"succ",
"head":[...],"column_meta":[[name,type_id,len]],...}`` with zoned timestamps on ``/rest/sqlutc``
and zoneless local ones on ``/rest/sql`` — checks Basic auth,
and keeps a small in-memory database so that what a client writes can be read back. It
understands exactly the statements tdetl sends (catalog queries, DDL, multi-table INSERT, ranged
SELECT); anything else gets TDengine's syntax error, so a client sending unexpected SQL fails.
"""

from __future__ import annotations

import base64
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler
from typing import Any

from .http import Loopback, send_json

TZ = timezone(timedelta(hours=8))
V2_IDS = {"TIMESTAMP": 9, "FLOAT": 6, "INT": 4, "BIGINT": 5, "DOUBLE": 7, "BINARY": 8, "VARCHAR": 8,
          "NCHAR": 10, "BOOL": 1}


@dataclass
class Table:
    stable: str | None
    tags: dict[str, Any]
    rows: dict[int, tuple[Any, ...]] = field(default_factory=dict)  # ts -> row (one row per timestamp)


@dataclass
class Db:
    precision: str = "ms"
    options: dict[str, Any] = field(default_factory=dict)
    stables: dict[str, tuple[list[tuple[str, str, int]], list[tuple[str, str, int]]]] = field(default_factory=dict)
    normal: dict[str, list[tuple[str, str, int]]] = field(default_factory=dict)
    tables: dict[str, Table] = field(default_factory=dict)

    def columns(self, name: str) -> list[tuple[str, str, int]]:
        t = self.tables[name]
        return self.stables[t.stable][0] if t.stable else self.normal[name]


class SqlError(Exception):
    def __init__(self, code: int, desc: str) -> None:
        super().__init__(desc)
        self.code, self.desc = code, desc


def _ident(text: str) -> str:
    return text.strip().strip("`")


def _values(text: str) -> list[list[Any]]:
    """Tuples of SQL literals: NULL, true/false, numbers, '...' with backslash escapes."""
    out: list[list[Any]] = []
    for tup in re.finditer(r"\(((?:'(?:\\.|[^'\\])*'|[^()'])*)\)", text):
        row = []
        for m in re.finditer(r"\s*('(?:\\.|[^'\\])*'|[^,]+)\s*(?:,|$)", tup.group(1)):
            v = m.group(1).strip()
            if v.startswith("'"):
                row.append(re.sub(r"\\(.)", r"\1", v[1:-1]))
            elif v.upper() == "NULL":
                row.append(None)
            elif v in ("true", "false"):
                row.append(v == "true")
            else:
                row.append(float(v) if any(c in v for c in ".eE") and not v.startswith("0x") else int(v))
        out.append(row)
    return out


class Emulator:
    def __init__(self, v2: bool = False, user: str = "root", password: str = "taosdata") -> None:
        self.v2 = v2
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.dbs: dict[str, Db] = {}
        self.statements: list[tuple[str, str]] = []  # (path, sql) as received
        self.lock = threading.Lock()
        self.local_time = False

    # -- replies --------------------------------------------------------------------------------

    def _ts(self, v: int, precision: str) -> str:
        div = {"ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[precision]
        t = datetime.fromtimestamp(v // div, TZ)
        frac = str(v % div).rjust(len(str(div)) - 1, "0")
        if self.local_time:
            return t.strftime("%Y-%m-%d %H:%M:%S") + f".{frac}"
        if self.v2:
            return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{frac}+0800"
        return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{frac}+08:00"

    def result(self, cols: list[tuple[str, str, int]], rows: list[list[Any]], precision: str = "ms") -> dict[str, Any]:
        data = [[self._ts(v, precision) if t == "TIMESTAMP" and v is not None else v
                 for (_, t, _), v in zip(cols, r)] for r in rows]
        if self.v2:
            return {"status": "succ", "head": [c[0] for c in cols],
                    "column_meta": [[n, V2_IDS[t], ln] for n, t, ln in cols], "data": data, "rows": len(data)}
        return {"code": 0, "column_meta": [list(c) for c in cols], "data": data, "rows": len(data)}

    def affected(self, n: int) -> dict[str, Any]:
        if self.v2:
            return {"status": "succ", "head": ["affected_rows"], "column_meta": [["affected_rows", 4, 4]],
                    "data": [[n]], "rows": 1}
        return {"code": 0, "column_meta": [["affected_rows", "INT", 4]], "data": [[n]], "rows": 1}

    def error(self, code: int, desc: str) -> dict[str, Any]:
        return {"status": "error", "code": code, "desc": desc} if self.v2 else {"code": code, "desc": desc}

    # -- statements -----------------------------------------------------------------------------

    def _db(self, name: str | None) -> Db:
        if not name or name not in self.dbs:
            raise SqlError(0x0388, "Database not exist")
        return self.dbs[name]

    def _split(self, name: str, current: str | None) -> tuple[Db, str]:
        parts = [_ident(p) for p in re.findall(r"`[^`]+`|[^.`]+", name)]
        return (self._db(parts[0]), parts[1]) if len(parts) == 2 else (self._db(current), parts[0])

    def execute(self, sql: str, db: str | None) -> dict[str, Any]:
        s = sql.strip().rstrip(";")
        if re.fullmatch(r"SELECT SERVER_VERSION\(\)", s, re.I):
            return self.result([("server_version()", "VARCHAR", 7)], [["2.6.0.30" if self.v2 else "3.3.7.5"]])
        if m := re.fullmatch(r"USE (\S+)", s, re.I):
            self._db(_ident(m.group(1)))
            return self.affected(0)
        if m := re.fullmatch(r"CREATE DATABASE IF NOT EXISTS (\S+)(.*)", s, re.I):
            opts = dict(re.findall(r"(\w+) ('[^']*'|\S+)", m.group(2)))
            precision = opts.get("PRECISION", "'ms'").strip("'")
            self.dbs.setdefault(_ident(m.group(1)), Db(precision, opts))
            return self.affected(0)
        if m := re.fullmatch(r"SELECT \* FROM information_schema\.ins_databases WHERE name = '(\w+)'", s):
            d = self._db(m.group(1)) if m.group(1) in self.dbs else None
            cols = [("name", "VARCHAR", 64), ("precision", "VARCHAR", 2), ("keep", "VARCHAR", 32),
                    ("replica", "TINYINT", 1), ("cachemodel", "VARCHAR", 12)]
            rows = [[m.group(1), d.precision, "3650d,3650d,3650d", 1, "none"]] if d else []
            return self.result(cols, rows)
        if m := re.fullmatch(r"SELECT `precision` FROM information_schema\.ins_databases WHERE name = '(\w+)'", s):
            rows = [[self.dbs[m.group(1)].precision]] if m.group(1) in self.dbs else []
            return self.result([("precision", "VARCHAR", 2)], rows)
        if m := re.fullmatch(r"SELECT stable_name FROM information_schema\.ins_stables WHERE db_name = '(\w+)'", s):
            return self.result([("stable_name", "VARCHAR", 192)], [[n] for n in self._db(m.group(1)).stables])
        if m := re.fullmatch(r"SELECT table_name FROM information_schema\.ins_tables WHERE db_name = '(\w+)'"
                             r" AND type = 'NORMAL_TABLE'", s):
            return self.result([("table_name", "VARCHAR", 192)], [[n] for n in self._db(m.group(1)).normal])
        if self.v2 and re.fullmatch(r"SHOW DATABASES", s):
            return self.result([("name", "VARCHAR", 32), ("precision", "VARCHAR", 8)],
                               [[n, d.precision] for n, d in self.dbs.items()])
        if self.v2 and (m := re.fullmatch(r"SHOW (\S+)\.STABLES", s)):
            return self.result([("name", "VARCHAR", 192)], [[n] for n in self._db(_ident(m.group(1))).stables])
        if self.v2 and (m := re.fullmatch(r"SHOW (\S+)\.TABLES", s)):
            d = self._db(_ident(m.group(1)))
            return self.result([("table_name", "VARCHAR", 192), ("stable_name", "VARCHAR", 192)],
                               [[n, t.stable] for n, t in d.tables.items()])
        if m := re.fullmatch(r"DESCRIBE (\S+)", s, re.I):
            d, name = self._split(m.group(1), db)
            if name in d.stables:
                cols, tags = d.stables[name]
            elif name in d.normal:
                cols, tags = d.normal[name], []
            else:
                raise SqlError(0x2662, "Table does not exist")
            rows = [[n, t, ln, ""] for n, t, ln in cols] + [[n, t, ln, "TAG"] for n, t, ln in tags]
            return self.result([("field", "VARCHAR", 64), ("type", "VARCHAR", 32), ("length", "INT", 4),
                                ("note", "VARCHAR", 8)], rows)
        if m := re.fullmatch(r"CREATE STABLE IF NOT EXISTS (\S+) \((.*)\) TAGS \((.*)\)", s):
            d, name = self._split(m.group(1), db)
            d.stables.setdefault(name, (self._coldefs(m.group(2)), self._coldefs(m.group(3))))
            return self.affected(0)
        if m := re.fullmatch(r"CREATE TABLE IF NOT EXISTS (\S+) \((.*)\)", s):
            d, name = self._split(m.group(1), db)
            d.normal.setdefault(name, self._coldefs(m.group(2)))
            d.tables.setdefault(name, Table(None, {}))
            return self.affected(0)
        if s.startswith("CREATE TABLE IF NOT EXISTS"):
            d = self._db(db)
            clause = r"IF NOT EXISTS (`[^`]+`) USING (`[^`]+`) \(([^)]*)\) TAGS (\((?:'(?:\\.|[^'\\])*'|[^()'])*\))"
            for c in re.finditer(clause, s):
                names = [_ident(x) for x in c.group(3).split(",")]
                tags = dict(zip(names, _values(c.group(4))[0]))
                d.tables.setdefault(_ident(c.group(1)), Table(_ident(c.group(2)), tags))
            return self.affected(0)
        if (m := re.fullmatch(r"SELECT TAGS tbname, (.*) FROM (\S+)", s)) or \
                (self.v2 and (m := re.fullmatch(r"SELECT tbname, (.*) FROM (\S+)", s))):
            if not self.v2 and not s.startswith("SELECT TAGS"):
                raise SqlError(0x2600, "syntax error")
            d, st = self._split(m.group(2), db)
            tag_defs = {n: (n, t, ln) for n, t, ln in d.stables[st][1]}
            names = [_ident(x) for x in m.group(1).split(",")]
            rows = [[n] + [t.tags.get(x) for x in names] for n, t in d.tables.items() if t.stable == st]
            return self.result([("tbname", "VARCHAR", 192)] + [tag_defs[x] for x in names], rows)
        if m := re.fullmatch(r"SELECT (.*) FROM (\S+)(?: WHERE (.*))?", s):
            d, name = self._split(m.group(2), db)
            if name in d.stables:
                return self._from_stable(d, name, m.group(1), m.group(3) or "")
            if name not in d.tables:
                raise SqlError(0x2662, "Table does not exist")
            want = [_ident(x) for x in m.group(1).split(",")]
            cols = {c[0]: (i, c) for i, c in enumerate(d.columns(name))}
            lo, hi = self._range(m.group(3) or "")
            rows = [[r[cols[w][0]] for w in want] for ts, r in sorted(d.tables[name].rows.items()) if lo <= ts < hi]
            return self.result([cols[w][1] for w in want], rows, d.precision)
        if s.startswith("INSERT INTO"):
            d, n = self._db(db), 0
            for c in re.finditer(r" (`[^`]+`) \(([^)]*)\) VALUES((?: \((?:'(?:\\.|[^'\\])*'|[^()'])*\))+)", s):
                name = _ident(c.group(1))
                if name not in d.tables:
                    raise SqlError(0x2662, "Table does not exist")
                names = [_ident(x) for x in c.group(2).split(",")]
                order = [names.index(col[0]) for col in d.columns(name)]
                for row in _values(c.group(3)):
                    d.tables[name].rows[row[order[0]]] = tuple(row[i] for i in order)
                    n += 1
            return self.affected(n)
        raise SqlError(0x2600, f"syntax error near '{s[:40]}'")

    def _from_stable(self, d: Db, st: str, select: str, where: str) -> dict[str, Any]:
        """``SELECT tbname, [tags,] cols FROM st WHERE [tbname IN (...)] [AND ts range]``."""
        want = [_ident(x) for x in select.split(",")]
        cols, tags = d.stables[st]
        defs = {c[0]: c for c in [("tbname", "VARCHAR", 192), *cols, *tags]}
        pos = {c[0]: i for i, c in enumerate(cols)}
        m = re.match(r"tbname IN \(([^)]*)\)", where)
        names = {x.strip().strip("'") for x in m.group(1).split(",")} if m else None
        lo, hi = self._range(where)
        rows = []
        for tname, t in sorted(d.tables.items()):
            if t.stable != st or (names is not None and tname not in names):
                continue
            for ts, r in sorted(t.rows.items()):
                if lo <= ts < hi:
                    rows.append([tname if w == "tbname" else r[pos[w]] if w in pos else t.tags.get(w) for w in want])
        return self.result([defs[w] for w in want], rows, d.precision)

    @staticmethod
    def _range(where: str) -> tuple[int, int]:
        lo, hi = -(1 << 63), 1 << 63
        for op, v in re.findall(r"`\w+` (>=|<|>) (-?\d+)", where):
            lo = max(lo, int(v) + (op == ">")) if op in (">=", ">") else lo
            hi = min(hi, int(v)) if op == "<" else hi
        return lo, hi

    @staticmethod
    def _coldefs(text: str) -> list[tuple[str, str, int]]:
        out = []
        for m in re.finditer(r"`([^`]+)` (\w+(?: UNSIGNED)?)(?:\((\d+)\))?", text):
            t = m.group(2)
            width = int(m.group(3)) if m.group(3) else {"TIMESTAMP": 8, "INT": 4, "FLOAT": 4, "BOOL": 1}.get(t, 8)
            out.append((m.group(1), t, width))
        return out


class RestServer:
    """ThreadingHTTPServer on 127.0.0.1 around an :class:`Emulator`."""

    def __init__(self, emulator: Emulator) -> None:
        emu = emulator

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                path = self.path.split("?")[0]
                m = re.fullmatch(r"/rest/sql(utc)?(?:/([^/]+))?", path)
                if m and m.group(1) and not emu.v2:
                    m = None  # 3.x has /rest/sql only
                with emu.lock:
                    emu.statements.append((self.path, body))
                    if self.headers.get("Authorization") != emu.auth:
                        reply, status = emu.error(0x0357, "Authentication failure"), 401
                    elif not m:
                        reply, status = emu.error(0xFFFF, f"no such endpoint {path}"), 404
                    else:
                        try:
                            emu.local_time = emu.v2 and not m.group(1)  # 2.x /rest/sql: no zone
                            reply, status = emu.execute(body, m.group(2)), 200
                        except SqlError as e:
                            reply, status = emu.error(e.code, e.desc), 200
                send_json(self, status, reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = Loopback(Handler)
        self.port = self.server.port
        self.server.start()

    def close(self) -> None:
        self.server.close()

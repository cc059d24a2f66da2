"""What the TDengine suites share: the servers under test, scratch databases, and read-back through
every transport and through taospy (an independent reader, so a test never trusts only our decoder).

The suites run against the server(s) named by TDETL_TEST_TAOS=taos://root:taosdata@host:6030 (native,
needs libtaos) and/or TDETL_TEST_TAOSWS=taos+ws://root:taosdata@host:6041 (taosAdapter, which also
serves REST). When both are set they must name the same server (as shared/tdengine/start.sh does).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from tdetl.dsn import parse_dsn
from tdetl.taos.conn import Connection
from tdetl.taos.connect import open_connection

from .services import free_port

NATIVE = (os.environ.get("TDETL_TEST_TAOS") or "").rstrip("/")
WS = (os.environ.get("TDETL_TEST_TAOSWS") or "").rstrip("/")
SERVERS = [v for v in (NATIVE, WS) if v]
# taosAdapter serves REST on the WebSocket port: the REST transport is tested when WebSocket is.
REST = [v.replace("taos+ws://", "taos+http://", 1).replace("taos+wss://", "taos+https://", 1)
        for v in SERVERS if v.startswith(("taos+ws://", "taos+wss://"))]
TRANSPORTS = SERVERS + REST
ANY = SERVERS[0] if SERVERS else ""
pytestmark = [
    pytest.mark.taos,
    pytest.mark.skipif(not SERVERS, reason="no TDengine server: set TDETL_TEST_TAOS=taos://root:taosdata@host:6030"
                                           " and/or TDETL_TEST_TAOSWS=taos+ws://root:taosdata@host:6041"),
]


def connect(server: str, db: str | None = None) -> Connection:
    return open_connection(parse_dsn(server + "/"), db)


def scratch_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def drop(*names: str) -> None:
    """Drop databases, and first the topics on them (TDengine refuses to drop a database with topics)."""
    with connect(ANY) as conn:
        for name in names:
            topics = conn.query(f"SELECT topic_name FROM information_schema.ins_topics WHERE db_name = '{name}'")
            for t in topics.table().column(0).to_pylist():
                conn.execute(f"DROP TOPIC IF EXISTS FORCE `{t}`")
            conn.execute(f"DROP DATABASE IF EXISTS `{name}`")


def scratch_db(prefix: str) -> Iterator[str]:
    """A database name of the test's own, dropped afterwards."""
    name = scratch_name(prefix)
    yield name
    drop(name)


@pytest.fixture
def scratch() -> Iterator[Callable[[str], str]]:
    """Makes database names for the test, all dropped afterwards."""
    names: list[str] = []

    def make(prefix: str = "tdetl_it") -> str:
        names.append(scratch_name(prefix))
        return names[-1]
    yield make
    drop(*names)


@pytest.fixture(params=SERVERS or ["unset"])
def server(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def db(server: str) -> Iterator[str]:
    yield from scratch_db("tdetl_it")


@pytest.fixture
def db2(server: str) -> Iterator[str]:
    yield from scratch_db("tdetl_it2")


def read_back(db: str, sql: str) -> list[pa.Table]:
    """The same query through every configured transport (REST included)."""
    out = []
    for s in TRANSPORTS:
        with connect(s, db) as conn:
            out.append(conn.query(sql).table())
    return out


def taospy_rows(db: str, sql: str) -> list[tuple[Any, ...]]:
    """Rows as taospy (the official connector, natively) reads them; or taos-ws-py when only a
    WebSocket server is configured. Timestamps: select them as ``CAST(ts AS BIGINT)``."""
    if NATIVE:
        import taos

        dsn = parse_dsn(NATIVE + "/")
        conn = taos.connect(host=dsn.host or "localhost", port=dsn.port or 6030, user=dsn.user or "root",
                            password=dsn.password or "taosdata", database=db)
        try:
            return [tuple(r) for r in conn.query(sql).fetch_all()]
        finally:
            conn.close()
    import taosws

    dsn = parse_dsn(WS + "/")
    conn = taosws.connect(f"ws://{dsn.user or 'root'}:{dsn.password or 'taosdata'}@{dsn.host}:{dsn.port}/{db}")
    try:
        return [tuple(r) for r in conn.query(sql)]
    finally:
        conn.close()


def sql(server: str, *statements: str, db: str | None = None) -> None:
    with connect(server, db) as conn:
        for s in statements:
            conn.execute(s)


def scalar(server: str, query: str, db: str | None = None) -> Any:
    with connect(server, db) as conn:
        got = conn.query(query).table()
    return got.column(0).to_pylist()[0] if got.num_rows else None


DB_OPTIONS = ("precision", "vgroups", "buffer", "keep", "duration", "cachemodel", "cachesize", "wal_level",
              "wal_retention_period", "wal_retention_size", "minrows", "maxrows", "comp", "pages", "pagesize",
              "stt_trigger")


def db_options(db: str) -> dict[str, Any]:
    """The CREATE DATABASE options a copy must carry, as the server reports them."""
    cols = ", ".join(f"`{c}`" for c in DB_OPTIONS)
    rows = taospy_rows(db, f"SELECT {cols} FROM information_schema.ins_databases WHERE name = '{db}'")
    return dict(zip(DB_OPTIONS, rows[0]))


BUNDLE = Path(__file__).resolve().parent.parent.parent / "shared" / "tdengine"


class Bundle:
    """A TDengine of the test's own (shared/tdengine's start.sh on free ports), to stop mid-run."""

    def __init__(self, root: Path) -> None:
        self.dir, self.port = root, free_port()
        self.adapter = next(p for p in iter(free_port, None) if p != self.port)

    def start(self) -> dict[str, str]:
        out = subprocess.run(["bash", str(BUNDLE / "start.sh"), "--dir", str(self.dir), "--port", str(self.port),
                              "--adapter-port", str(self.adapter), "--env"], capture_output=True, text=True,
                             timeout=180)
        assert out.returncode == 0, out.stderr[-2000:]
        return dict(line.removeprefix("export ").split("=", 1) for line in out.stdout.splitlines()
                    if line.startswith("export "))

    def stop(self) -> None:
        subprocess.run(["bash", str(BUNDLE / "stop.sh"), "--dir", str(self.dir)], capture_output=True, timeout=120)


@pytest.fixture
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bundle]:
    if not (BUNDLE / "start.sh").exists():
        pytest.skip(f"the TDengine bundle is not at {BUNDLE}")
    b = Bundle(tmp_path_factory.mktemp("tdengine"))
    yield b
    b.stop()

"""``postgres://user:pass@host:5432/db?sql=...`` (also ``postgresql://``): PostgreSQL read with ADBC
(``adbc-driver-postgresql``), which streams the server's binary COPY format into Arrow batches in C.
Measured against ConnectorX on 2,000,000 rows it read 1.15 s to 1.38 s, and it keeps NUMERIC exact
(ConnectorX read an unbounded NUMERIC as decimal(38,10), dropping digits). A NUMERIC column's declared
precision and scale come from a temporary view of the query, so it lands as TDengine DECIMAL(p,s)."""

from __future__ import annotations

import re
import secrets
import urllib.parse
from collections.abc import Iterator
from typing import Any, ClassVar

import pyarrow as pa

from ...capabilities import SourceCapabilities
from ...errors import SourceError
from ...params import Param, Spec
from .arrow import Declared, decimal_of, normalize
from .source import SQL_PARAMS, SqlSource, first_line

_NUMERIC = re.compile(r"numeric\((\d+),(\d+)\)")
SSL = (Param("sslmode", "choice", None, "TLS as libpq takes it (absent: libpq's default, prefer)",
             choices=("disable", "allow", "prefer", "require", "verify-ca", "verify-full")),
       Param("sslrootcert", "text", None, "CA certificate file for verify-ca/verify-full"),
       Param("sslcert", "text", None, "client certificate file"),
       Param("sslkey", "text", None, "client key file"))


class PostgresReader:
    def __init__(self, uri: str, tz: str, where: str) -> None:
        import adbc_driver_manager
        import adbc_driver_postgresql.dbapi as dbapi

        self.errors = adbc_driver_manager.Error
        self.tz, self.where = tz, where
        try:
            self.conn = dbapi.connect(uri)
        except self.errors as e:
            raise SourceError(f"{where}: cannot connect: {first_line(e)}") from None
        self._declared: dict[str, dict[str, Declared]] = {}

    def _fail(self, e: Exception, sql: str) -> SourceError:
        return SourceError(f"{self.where}: PostgreSQL: {first_line(e)} (in {first_line(Exception(sql))})")

    def rows(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        try:
            with self.conn.cursor() as cur:
                cur.execute(sql)
                names = [d[0] for d in cur.description or ()]
                return names, [tuple(r) for r in cur.fetchall()]
        except self.errors as e:
            raise self._fail(e, sql) from None

    def declared(self, sql: str) -> dict[str, Declared]:
        """NUMERIC(p,s) per column: its result carries only text, the view's catalog the declaration."""
        view = f"tdetl_describe_{secrets.token_hex(6)}"
        try:
            with self.conn.cursor() as cur:
                cur.execute(f"CREATE TEMPORARY VIEW {view} AS {sql.rstrip().rstrip(';')}")
                cur.execute("SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
                            f" WHERE attrelid = '{view}'::regclass AND attnum > 0 AND NOT attisdropped")
                found = cur.fetchall()
        except self.errors:
            found = []  # no TEMP privilege: NUMERIC stays exact text
        finally:
            self.conn.rollback()
        out = {}
        for name, kind in found:
            m = _NUMERIC.fullmatch(kind)
            out[name] = Declared(decimal=decimal_of(int(m.group(1)), int(m.group(2))) if m else None)
        return out

    def batches(self, sql: str) -> Iterator[pa.RecordBatch]:
        shape = re.sub(r"'[^']*'", "''", sql)  # the same query in every window: its columns declared once
        if shape not in self._declared:
            self._declared[shape] = self.declared(sql)
        declared = self._declared[shape]
        try:
            with self.conn.cursor() as cur:
                cur.execute(sql)
                reader = cur.fetch_record_batch()
                empty = True
                for batch in reader:
                    empty = False
                    yield normalize(batch, declared, self.tz, self.where)
                if empty:  # the schema still says what the tables are
                    yield normalize(pa.RecordBatch.from_pylist([], schema=reader.schema), declared, self.tz,
                                    self.where)
            self.conn.rollback()  # end the read's transaction: a realtime run must not hold one open
        except (self.errors, pa.ArrowException) as e:
            raise self._fail(e, sql) from None

    def close(self) -> None:
        try:
            self.conn.rollback()
            self.conn.close()
        except self.errors:
            pass


class PostgresSource(SqlSource):
    capabilities = SourceCapabilities(parser=True, partitions="windows")  # subtable rows x time spans
    requires: ClassVar[dict[str, str]] = {"adbc_driver_postgresql": "postgres"}
    spec = Spec(*SQL_PARAMS, *SSL)

    def connect(self) -> PostgresReader:
        d = self.dsn
        cfg = self.config
        auth = ""
        if d.user:
            auth = urllib.parse.quote(d.user, safe="")
            if d.password:
                auth += ":" + urllib.parse.quote(d.password, safe="")
            auth += "@"
        query = {k: cfg[k] for k in ("sslmode", "sslrootcert", "sslcert", "sslkey") if cfg[k]}
        query["application_name"] = "tdetl"
        uri = (f"postgresql://{auth}{d.host or 'localhost'}:{d.port or 5432}/{urllib.parse.quote(d.object or '')}"
               f"?{urllib.parse.urlencode(query)}")
        return PostgresReader(uri, self.tzname, self.where)

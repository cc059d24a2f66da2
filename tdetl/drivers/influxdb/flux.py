"""InfluxDB 2.x, read with Flux through influxdb-client. The annotated CSV the server streams is cut
into pieces at table and line boundaries and each piece parsed by Arrow's CSV reader with the
column types its ``#datatype`` row declares: no per-row Python, and a window is never held whole."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ...errors import SourceError
from ...polars_types import polars_type
from ...types import TDType
from ..common.series import rfc3339

log = logging.getLogger(__name__)

# Flux datatypes (annotated CSV ``#datatype``) as Arrow types, and as InfluxDB field kinds
ARROW = {"double": pa.float64(), "long": pa.int64(), "unsignedLong": pa.uint64(), "boolean": pa.bool_(),
         "string": pa.string(), "dateTime:RFC3339": pa.timestamp("ns", "UTC"),
         "dateTime:RFC3339Nano": pa.timestamp("ns", "UTC")}
KINDS = {"double": "float", "long": "integer", "unsignedLong": "unsigned", "boolean": "boolean", "string": "string"}
_NOT_TAGS = {"result", "table", "_start", "_stop", "_time", "_value", "_field", "_measurement"}


@dataclass
class Piece:
    """Rows of one annotated table block (or part of one): the block's datatypes and group key."""

    datatypes: dict[str, str]
    group: set[str]
    data: pa.Table


def annotated_pieces(chunks: Iterable[bytes], where: str, piece_bytes: int = 4 << 20) -> Iterator[Piece]:
    """Split the stream at ``#datatype`` blocks (a new schema) and, inside a long block, at line ends
    outside quotes; parse each piece with Arrow. A Flux error table raises SourceError."""
    buf = bytearray()
    it = iter(chunks)
    eof = False
    head: tuple[list[str], dict[str, str], set[str]] | None = None
    scan = 0  # where the search for the next block starts

    def more() -> bool:
        nonlocal eof
        for chunk in it:
            if chunk:
                buf.extend(chunk)
                return True
        eof = True
        return False

    while True:
        if head is None:
            while buf[:1] in (b"\r", b"\n"):
                del buf[:1]
            lines = _lines(buf, 4)
            if lines is None:
                if eof:
                    if buf.strip():
                        raise SourceError(f"{where}: InfluxDB answered with a truncated table header:"
                                          f" {bytes(buf[:80])!r}")
                    return
                more()
                continue
            head_end, rows = lines
            head = _header(rows, where)
            del buf[:head_end]
            scan = 0
            continue
        nxt = _next_block(buf, scan)
        if nxt is not None:
            piece = bytes(buf[:nxt])
            del buf[:nxt]
            yield from _parse(piece, head, where)
            head, scan = None, 0
            continue
        if eof:
            piece = bytes(buf)
            buf.clear()
            yield from _parse(piece, head, where)
            return
        scan = max(0, len(buf) - 1)
        if len(buf) >= piece_bytes:
            cut = _line_cut(buf)
            if cut:
                piece = bytes(buf[:cut])
                del buf[:cut]
                scan = 0
                yield from _parse(piece, head, where)
        more()


def _lines(buf: bytearray, n: int) -> tuple[int, list[str]] | None:
    """The first ``n`` lines (annotations and header hold no quoted line breaks)."""
    pos = 0
    for _ in range(n):
        nl = buf.find(b"\n", pos)
        if nl < 0:
            return None
        pos = nl + 1
    return pos, bytes(buf[:pos]).decode("utf-8").splitlines()


def _header(lines: list[str], where: str) -> tuple[list[str], dict[str, str], set[str]]:
    rows = list(csv.reader(lines))
    kinds = {r[0]: r for r in rows[:3] if r and r[0].startswith("#")}
    if "#datatype" not in kinds or len(rows) < 4:
        raise SourceError(f"{where}: InfluxDB answered without the #datatype annotation: {lines[0][:80]!r}")
    names = ["_annotation", *rows[3][1:]]
    datatypes = dict(zip(names[1:], kinds["#datatype"][1:]))
    group = {n for n, g in zip(names[1:], kinds.get("#group", [])[1:]) if g == "true"}
    return names, datatypes, group


def _next_block(buf: bytearray, scan: int) -> int | None:
    """Start of the next annotation row (a line beginning with ``#``; data rows begin with the empty
    annotation column, ``,``), unless it sits inside a quoted value."""
    pos = scan
    while True:
        at = buf.find(b"\n#", pos)
        if at < 0:
            return None
        if buf.count(b'"', 0, at) % 2 == 0:
            return at + 1
        pos = at + 2


def _line_cut(buf: bytearray) -> int:
    """End of the last complete line outside quotes (0: none yet)."""
    end = len(buf)
    while True:
        nl = buf.rfind(b"\n", 0, end)
        if nl < 0:
            return 0
        if buf.count(b'"', 0, nl) % 2 == 0:
            return nl + 1
        end = nl


def _parse(piece: bytes, head: tuple[list[str], dict[str, str], set[str]], where: str) -> Iterator[Piece]:
    names, datatypes, group = head
    if not piece.strip():
        return
    try:
        table = pacsv.read_csv(
            io.BytesIO(piece),
            read_options=pacsv.ReadOptions(column_names=names),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types={n: ARROW.get(t, pa.string()) for n, t in datatypes.items()},
                null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=False))
    except (pa.ArrowInvalid, UnicodeDecodeError) as e:
        raise SourceError(f"{where}: InfluxDB sent a row Arrow cannot read: {str(e).splitlines()[0]}") from None
    if names[1:3] == ["error", "reference"]:
        msg = table.column("error")[0].as_py() if table.num_rows else "unknown error"
        raise SourceError(f"{where}: InfluxDB: {msg}")
    yield Piece(datatypes, group, table)


def flux_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${") + '"'


class Flux:
    """Schema and window queries against one bucket through influxdb-client's raw query stream."""

    def __init__(self, base: str, bucket: str, org: str, token: str, timeout: float, where: str) -> None:
        from influxdb_client import InfluxDBClient

        self.bucket, self.org, self.where, self.base = bucket, org, where, base
        self.client = InfluxDBClient(url=base, token=token, org=org, timeout=int(timeout * 1000), retries=0)
        self.api = self.client.query_api()

    def _pieces(self, flux: str) -> Iterator[Piece]:
        from influxdb_client.rest import ApiException
        from urllib3.exceptions import HTTPError

        log.debug("flux: %s", flux)
        try:
            resp = self.api.query_raw(flux, org=self.org)
        except ApiException as e:
            msg = getattr(e, "message", None) or e.reason
            raise SourceError(f"{self.where}: InfluxDB refused the query: HTTP {e.status}: {msg}") from None
        except (HTTPError, OSError) as e:
            raise SourceError(f"{self.where}: cannot reach InfluxDB at {self.base}: {type(e).__name__}") from None
        try:
            yield from annotated_pieces(resp.stream(1 << 20), self.where)
        except (HTTPError, OSError) as e:
            raise SourceError(f"{self.where}: InfluxDB stream broke: {type(e).__name__}: {e}") from None
        finally:
            resp.release_conn()

    def _range(self, begin: int, stop: int) -> str:
        return f"from(bucket: {flux_string(self.bucket)}) |> range(start: {rfc3339(begin)}, stop: {rfc3339(stop)})"

    def measurements(self, begin: int, stop: int) -> list[str]:
        flux = (f'import "influxdata/influxdb/schema"\n'
                f"schema.measurements(bucket: {flux_string(self.bucket)}, start: {rfc3339(begin)},"
                f" stop: {rfc3339(stop)})")
        out: list[str] = []
        for p in self._pieces(flux):
            out.extend(v for v in p.data.column("_value").to_pylist() if v not in out)
        return out

    def describe(self, m: str, begin: int, stop: int) -> tuple[list[str], list[tuple[str, str]]]:
        """Tag keys and (field, kind) from the first point of every series and field in the range;
        a field typed differently in two series repeats with each kind."""
        flux = f"{self._range(begin, stop)} |> filter(fn: (r) => r._measurement == {flux_string(m)}) |> first()"
        tags: list[str] = []
        fields: list[tuple[str, str]] = []
        for p in self._pieces(flux):
            tags.extend(c for c in p.data.column_names if c in p.group and c not in _NOT_TAGS and c not in tags)
            kind = KINDS.get(p.datatypes.get("_value", "string"), "string")
            for f in pc.unique(p.data.column("_field")).to_pylist():
                if (f, kind) not in fields:
                    fields.append((f, kind))
        return tags, fields

    def window(self, m: str, tags: list[str], fields: list[tuple[str, TDType]], lo: int, hi: int
               ) -> Iterator[tuple[dict[str, str | None], pl.DataFrame]]:
        flux = (f"{self._range(lo, hi)} |> filter(fn: (r) => r._measurement == {flux_string(m)})"
                f' |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")')
        dtypes = [(f, polars_type(t)) for f, t in fields]
        for p in self._pieces(flux):
            df = pl.from_arrow(p.data)
            assert isinstance(df, pl.DataFrame)
            present = [t for t in tags if t in df.columns]
            cols = [pl.col("_time").dt.replace_time_zone(None).alias("ts")]
            for f, d in dtypes:
                cols.append(pl.col(f).cast(d) if f in df.columns else pl.lit(None, d).alias(f))
            for part in df.partition_by("table", maintain_order=True):
                first = part.row(0, named=True)
                yield {t: (first[t] if t in present else None) for t in tags}, part.select(cols)

    def close(self) -> None:
        self.client.close()

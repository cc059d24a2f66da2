"""``csv:`` source: a file, a directory or a glob of plain or gzip CSV files.

Each file is a partition (``--jobs`` reads files in parallel) and is scanned lazily by Polars in
chunks of ``batch_rows``; values are read as text and converted by the parser's compiled casts, so
a value that does not convert is reported with its file and line. A position is the number of data
rows of the file already delivered.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import polars as pl

from ...capabilities import SourceCapabilities
from ...dsn import Dsn
from ...errors import ConfigError, DsnError, shown
from ...options import Options
from ...params import DATABASE, Param, Spec
from ...quality import Rejects
from ...transform.casts import ROW, FrameCaster, infer_fields
from ...transform.parser import TableBuilder, single_table_model
from ...types import TDType
from ..common.file_source import FileSource
from .lines import Checked, check

_NUMBER_LIKE = r"^\s*[-+]?(\d+\.?\d*([eE][-+]?\d+)?|\.\d+|\d{4}-\d\d-\d\d.*|true|false)\s*$"


class CsvSource(FileSource):
    capabilities = SourceCapabilities(parser=True, partitions="files", local_files=True)
    kind = "CSV"
    spec = Spec(
        Param("header", "choice", "auto", "is the first line a header (auto: detect)",
              choices=("auto", "true", "false")),
        Param("delimiter", "text", ",", "field separator (one byte)"),
        Param("quote", "text", '"', "quote character (one byte)"),
        Param("skip", "int", 0, "lines skipped at the start of each file", minimum=0),
        Param("comment", "text", None, "lines starting with this character are skipped"),
        Param("table", "text", None, "table name without a parser (default: the file name)"),
        DATABASE)

    def __init__(self, dsn: Dsn, options: Options, rejects: Rejects | None = None) -> None:
        super().__init__(dsn, options, rejects)
        cfg = self.config
        self.header_mode = cfg["header"]
        self.delimiter = cfg["delimiter"] or ","
        self.quote = cfg["quote"] or '"'
        if len(self.delimiter.encode()) != 1 or len(self.quote.encode()) != 1:
            raise DsnError(f"{dsn.masked()}: delimiter and quote must be single-byte characters")
        self.skip = cfg["skip"]
        self.comment = cfg["comment"] or None
        parser = options.parser
        self.fields = tuple(parser.fields) if parser else ()
        self.models = tuple(parser.models) if parser else ()
        self.steps = parser.steps if parser else ()
        self._builder: TableBuilder | None = None
        self._caster: FrameCaster | None = None
        self._headers: dict[Path, bool] = {}
        self._checks: dict[Path, Checked] = {}

    def wanted(self, path: Path) -> bool:
        return ".csv" in path.name.lower()

    # -- header and schema ------------------------------------------------------------------------

    def _first_lines(self, path: Path, n: int = 2) -> list[str]:
        opener = gzip.open if _is_gzip(path) else open
        try:
            with opener(path, "rt", encoding="utf-8", errors="replace", newline="") as fh:  # bad bytes: lines.py
                lines = []
                for _ in range(self.skip + n):
                    line = fh.readline()
                    if not line:
                        break
                    lines.append(line.rstrip("\r\n"))
                return lines[self.skip:]
        except (OSError, UnicodeDecodeError) as e:
            raise DsnError(f"{self.dsn.masked()}: cannot read {path}: {e}") from None

    def has_header(self, path: Path) -> bool:
        if self.header_mode != "auto":
            return self.header_mode == "true"
        if path not in self._headers:
            self._headers[path] = self._detect_header(path)
        return self._headers[path]

    def _detect_header(self, path: Path) -> bool:
        lines = self._first_lines(path)
        if not lines:
            return True
        first = pl.Series(lines[0].split(self.delimiter)).str.strip_chars().str.strip_chars(self.quote)
        if self.fields and set(first.to_list()) & {f.name for f in self.fields}:
            return True
        # a header has no number- or date-like field, no empty field and no repeated name
        numeric = bool(first.str.contains(_NUMBER_LIKE).any())
        return not numeric and first.str.len_chars().min() > 0 and first.n_unique() == len(first)

    def _checked(self, path: Path) -> Checked:
        """The file's bad records (each through the policy, alone), found before Polars parses it."""
        if path not in self._checks:
            try:
                self._checks[path] = check(path, self.delimiter, self.quote, self.skip, self.has_header(path),
                                           self.comment)
            except (pl.exceptions.PolarsError, OSError) as e:
                raise _malformed(path, 0, e) from None
        return self._checks[path]

    def _scan(self, path: Path) -> pl.LazyFrame:
        """A lazy text scan; headerless files get columns c1..cN (whatever Polars calls them)."""
        clean = self._checked(path).clean
        if clean is not None:
            clean.seek(0)
        lf = pl.scan_csv(
            clean if clean is not None else path, has_header=self.has_header(path), separator=self.delimiter,
            quote_char=self.quote,
            skip_rows=self.skip, infer_schema=False, row_index_name=ROW, comment_prefix=self.comment,
            raise_if_empty=False, missing_columns="insert", truncate_ragged_lines=False,
        )
        if self.has_header(path):
            return lf
        names = [n for n in lf.collect_schema().names() if n != ROW]
        return lf.rename({n: f"c{i + 1}" for i, n in enumerate(names)})

    def _prepare(self) -> None:
        if self._builder is not None:
            return
        first = self.files[0]
        try:
            sample = self._scan(first).head(10_000).collect()
        except pl.exceptions.PolarsError as e:
            raise _malformed(first, 0, e) from None
        fields = self.fields
        names = [c for c in sample.columns if c != ROW]
        for f in fields:
            if f.name not in names:
                raise ConfigError(f"{first}: parser field {f.name!r} is not a column"
                                  f" (columns: {', '.join(names)})")
        if not self.models:
            typed = {f.name for f in fields}
            fields = fields + tuple(f for f in infer_fields(sample.drop(ROW)) if f.name not in typed)
            order = {n: i for i, n in enumerate(names)}
            fields = tuple(sorted(fields, key=lambda f: order.get(f.name, len(order))))
            table = self.config["table"] or first.name.split(".")[0]
            models = (single_table_model(fields, table),)
        else:
            models = self.models
        types = {f.alias: f.type for f in fields if f.type}
        for name in sample.columns:
            if name != ROW and name not in {f.name for f in fields}:
                types.setdefault(name, TDType("VARCHAR"))
        for f in fields:
            types.setdefault(f.alias, TDType("VARCHAR"))
        self._caster = FrameCaster(fields)
        self._builder = TableBuilder(models, types, self.database, f"{self.dsn.masked()}", self.steps)

    # -- contract ---------------------------------------------------------------------------------

    def builders(self) -> Iterable[TableBuilder]:
        self._prepare()  # one for all files, planned from the first
        assert self._builder is not None
        return (self._builder,)

    def read(self, partition: str, start: Any = None) -> Iterator[Any]:
        self._prepare()
        assert self._builder is not None and self._caster is not None
        path = Path(partition)
        offset = 1 + self.skip + (1 if self.has_header(path) else 0)
        skip_rows = int(start["row"]) if start else 0

        checked = self._checked(path)
        lines = checked.lines

        def locate(row: int) -> tuple[str, dict[str, Any]]:
            line = int(lines[row]) if lines is not None else row + offset
            return f"{path}:{line}", {"source": str(path), "line": line}

        if checked.bad:
            at = [n for n, _, _ in checked.bad]
            before = lines.search_sorted(pl.Series(at, dtype=pl.Int64)).to_list() if lines is not None else at
            late = [b for b, k in zip(checked.bad, before) if k >= skip_rows]  # a resumed run handled the others
            self.rejects.reject([f"{path}:{n}: {why}: {shown(text)}" for n, why, text in late],
                                [{"source": str(path), "line": n, "text": shown(text, quote=False)}
                                 for n, _, text in late])
        lf = self._scan(path)
        if skip_rows:
            lf = lf.filter(pl.col(ROW) >= skip_rows)
        done = skip_rows
        try:
            for chunk in lf.collect_batches(chunk_size=self.options.batch_rows):
                if chunk.height == 0:
                    continue
                done = int(chunk[ROW][-1]) + 1
                typed = self._caster.cast(chunk, str(path), locate, self.rejects)
                yield from self._builder.build(typed, self.rejects, locate, partition,
                                               {"row": done})
        except pl.exceptions.PolarsError as e:
            raise _malformed(path, done, e) from None


def _malformed(path: Path, done: int, e: Exception) -> DsnError:
    text = str(e).strip()
    detail = text.split("Original error:")[-1].strip(" `\n") if "Original error:" in text else text
    return DsnError(f"{path}: malformed CSV after data row {done}: {detail or type(e).__name__}")


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"

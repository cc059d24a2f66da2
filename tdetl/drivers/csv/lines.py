"""The lines of a CSV file that hold no well-formed record: fewer or more fields than the header,
a quote never closed, bytes that are not UTF-8. Polars fills a short row with nulls without a word
and fails a whole file for the others, naming no line; this pass finds each bad record with its line
number so that it alone goes through the error policy. Vectorised over the file's lines (about 0.4x
the cost of the parse itself); records spanning lines (quoted newlines) are joined by quote parity.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ...errors import DataError

_LINE = "line"


@dataclass(frozen=True)
class Checked:
    """What a file's records look like: ``bad`` (first line number, reason, text) for the records
    that go through the policy, and, when any line must be left out, ``clean`` (the file without
    them, for the parse) with ``lines`` (the line number of each record of ``clean``)."""

    bad: list[tuple[int, str, str]]
    clean: io.BytesIO | None = None
    lines: pl.Series | None = None


_MAX_UNCLOSED = 1000  # lines that open a quote they never close, before the file is refused whole


def check(path: Path, delimiter: str, quote: str, skip: int, header: bool, comment: str | None) -> Checked:
    frame = pl.scan_csv(path, has_header=False, separator="\x00", quote_char=None, new_columns=[_LINE],
                        infer_schema=False, encoding="utf8-lossy", truncate_ragged_lines=True,
                        raise_if_empty=False).collect()
    if frame.width == 0 or frame.height <= skip:
        return Checked([])
    line = pl.col(_LINE)
    first = skip + (1 if header else 0)  # lines before it are no records
    q, d = (f"\\x{ord(c):02X}" for c in (quote, delimiter))  # one byte each: the same escape in Rust and Python
    strip = f"{q}[^{q}]*{q}"
    field = f"(?:{q}(?:[^{q}]|{q}{q})*{q}|[^{q}{d}\\n]*)"
    formed = f"^{field}(?:{d}{field})*$"  # a quote only around a whole field, doubled inside it
    blank = line.is_null() | (line.str.len_bytes() == 0) | (line == "\r")
    frame = frame.with_row_index("i").with_columns(  # one select: Polars runs the scans in parallel
        blank=blank, comment=line.str.starts_with(comment) if comment else pl.lit(False),
        quotes=line.str.count_matches(quote, literal=True).fill_null(0),
        fields=line.str.count_matches(delimiter, literal=True).fill_null(0) + 1,
        lossy=line.str.contains("\ufffd", literal=True).fill_null(False))
    frame = frame.with_columns(record=(pl.col("i") >= first) & ~pl.col("blank") & ~pl.col("comment"))
    expected: int | None = None
    if header and 0 < first <= frame.height:
        expected = len(re.sub(strip, "", frame[first - 1, _LINE] or "").split(delimiter))
    bad: dict[int, str] = {}
    if not (frame["quotes"].filter(frame["record"]) > 0).any():  # the common file: a record a line, no quoting
        if expected is None:
            firsts = frame["fields"].filter(frame["record"])
            expected = int(firsts[0]) if len(firsts) else 0
        wrong = frame.filter(pl.col("record") & ((pl.col("fields") != expected) | pl.col("lossy")))
        wrong = wrong.with_columns(formed=pl.lit(True))
        records = None  # every record line: built below only when some must be left out
    else:
        records, expected = _quoted_records(frame, strip, formed, delimiter, quote, expected, bad, path)
        wrong = records.filter((pl.col("fields") != expected) | pl.col("lossy") | ~pl.col("formed"))
    for i, n, lossy, ok in wrong.select("i", "fields", "lossy", "formed").iter_rows():
        bad[i] = "not valid UTF-8" if lossy else "a quote inside a field that is not quoted whole" if not ok else \
            f"{n} fields where the {'header' if header else 'first record'} has {expected}"
    if not bad and not frame["blank"].slice(first).any():
        return Checked([])
    if records is None:
        records = frame.filter(pl.col("record")).select("i", _LINE)
    texts = dict(frame.filter(pl.col("i").is_in(list(bad))).select("i", _LINE).iter_rows())
    reported = [(i + 1, why, texts.get(i) or "") for i, why in sorted(bad.items())]
    good = records.filter(~pl.col("i").is_in(list(bad)))
    other = frame.filter(~pl.col("record") & ~pl.col("blank")).select("i", _LINE)  # skipped, header, comments
    body = pl.concat([other, good.select("i", _LINE)]).sort("i")
    clean = io.BytesIO((body.select(line.str.join("\n"))[0, 0] + "\n").encode())
    return Checked(reported, clean, good["i"].cast(pl.Int64) + 1)


def _quoted_records(frame: pl.DataFrame, strip: str, formed: str, delimiter: str, quote: str,
                    expected: int | None, bad: dict[int, str], path: Path) -> tuple[pl.DataFrame, int]:
    """Records of a file that quotes: runs of lines that close every quote they open (quoted
    newlines). A line whose quote is never closed, or that opens a record of several lines that is
    bad (wrong number of fields, not UTF-8, a stray quote), is left out alone (in ``bad``) and the
    lines after it are looked at again."""
    line = pl.col(_LINE)
    fields = pl.when(line.str.contains(quote, literal=True)).then(line.str.replace_all(strip, "")).otherwise(line) \
        .str.count_matches(delimiter, literal=True) + 1
    for _ in range(_MAX_UNCLOSED):
        kept = frame.filter(pl.col("record") & ~pl.col("i").is_in(list(bad)))
        if not (kept["quotes"] % 2 == 1).any():  # no quoted newline: a record a line
            records = kept.select("i", _LINE, n=pl.lit(1), closed=pl.lit(True))
        else:
            kept = kept.with_columns(open=pl.col("quotes").cum_sum() % 2)
            kept = kept.with_columns(rec=(pl.col("open").shift(1, fill_value=0) == 0).cum_sum())
            records = kept.group_by("rec", maintain_order=True).agg(
                pl.col("i").first(), line.str.join("\n"), n=pl.len(), closed=pl.col("open").last() == 0)
        records = records.with_columns(fields=fields, lossy=line.str.contains("\ufffd", literal=True).fill_null(False),
                                       formed=~line.str.contains(quote, literal=True) | line.str.contains(formed))
        if expected is None:
            expected = int(records["fields"][0]) if records.height else 0
        unclosed = records.filter(~pl.col("closed") | ((pl.col("n") > 1) & (
            (pl.col("fields") != expected) | pl.col("lossy") | ~pl.col("formed"))))
        if unclosed.height == 0:
            return records.select("i", _LINE, "fields", "lossy", "formed"), expected
        bad[int(unclosed["i"][0])] = "a quote opened on this line is not closed"
    raise DataError(f"{path}: more than {_MAX_UNCLOSED} lines open a quote they do not close")

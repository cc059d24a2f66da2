"""Avro containers as taosdump writes them, read columnar by Polars. taosdump's ``lzma`` codec (raw
LZMA2 blocks) is one Polars does not know: such a container is rewritten block by block,
decompressed, with the ``null`` codec, and read from memory."""

from __future__ import annotations

import io
import lzma
from pathlib import Path

import polars as pl
import pyarrow as pa

from ...errors import BackupError

MAGIC = b"Obj\x01"
MAX_BLOCK = 1 << 30  # bytes one block may decompress to: a bound against a hostile file
HEAD = 4096  # the header's metadata (codec, schema) comes first; taosdump's schemas are shorter than this
LZMA_CODEC = b"\x14avro.codec\x08lzma"  # the metadata entry avro.codec = lzma, as its bytes


def _varint(data: bytes, pos: int, where: str) -> tuple[int, int]:
    """A zigzag long and the position after it."""
    shift = result = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise BackupError(f"{where}: truncated or malformed Avro container at byte {pos}")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return (result >> 1) ^ -(result & 1), pos


def _take(data: bytes, pos: int, length: int, where: str) -> tuple[bytes, int]:
    """``length`` bytes at ``pos`` and the position after them; a length that is negative or runs
    past the end (a damaged header) is refused rather than followed."""
    if length < 0 or pos + length > len(data):
        raise BackupError(f"{where}: malformed Avro header at byte {pos} (a length of {length})")
    return data[pos:pos + length], pos + length


def _zigzag(n: int) -> bytes:
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        if n < 0x80:
            out.append(n)
            return bytes(out)
        out.append((n & 0x7F) | 0x80)
        n >>= 7


def _header(data: bytes, where: str) -> tuple[dict[bytes, bytes], bytes, int]:
    """The container's metadata, its sync marker and where its first block starts."""
    if not data.startswith(MAGIC):
        raise BackupError(f"{where}: not an Avro container")
    pos, meta = len(MAGIC), {}
    while True:
        n, pos = _varint(data, pos, where)
        if n == 0:
            break
        if n < 0:
            _, pos = _varint(data, pos, where)
            n = -n
        for _ in range(n):
            klen, pos = _varint(data, pos, where)
            key, pos = _take(data, pos, klen, where)
            vlen, pos = _varint(data, pos, where)
            meta[key], pos = _take(data, pos, vlen, where)
    if pos + 16 > len(data):
        raise BackupError(f"{where}: truncated Avro header")
    return meta, data[pos:pos + 16], pos + 16


def _plain(data: bytes, meta: dict[bytes, bytes], sync: bytes, pos: int, where: str) -> bytes:
    """The container with its blocks decompressed (raw LZMA2) and its codec said to be ``null``."""
    meta = dict(meta)
    meta[b"avro.codec"] = b"null"
    out = io.BytesIO()
    out.write(MAGIC + _zigzag(len(meta)))
    for k, v in meta.items():
        out.write(_zigzag(len(k)) + k + _zigzag(len(v)) + v)
    out.write(b"\x00" + sync)
    while pos < len(data):
        count, pos = _varint(data, pos, where)
        size, pos = _varint(data, pos, where)
        if size < 0 or pos + size + 16 > len(data):
            raise BackupError(f"{where}: truncated Avro block at byte {pos}")
        try:
            dec = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2}])
            block = dec.decompress(data[pos:pos + size], MAX_BLOCK)
        except lzma.LZMAError as e:
            raise BackupError(f"{where}: an lzma block at byte {pos} does not decompress ({e})") from None
        if data[pos + size:pos + size + 16] != sync:
            raise BackupError(f"{where}: Avro block at byte {pos} does not end with the file's sync marker")
        pos += size + 16
        out.write(_zigzag(count) + _zigzag(len(block)) + block + sync)
    return out.getvalue()


def read(path: Path) -> pa.Table:
    """One container's records as an Arrow table (columns as the file names them)."""
    return frame(path).to_arrow()


def frame(path: Path) -> pl.DataFrame:
    """One container's records as a Polars frame (many are joined before going to Arrow once:
    each conversion costs ~0.1 ms however few the rows)."""
    where = str(path)
    try:
        with path.open("rb") as fh:
            head = fh.read(HEAD)
        if not head.startswith(MAGIC):
            raise BackupError(f"{where}: not an Avro container")
        if LZMA_CODEC not in head:  # Polars reads the file itself
            return pl.read_avro(path)
        data = path.read_bytes()
        meta, sync, pos = _header(data, where)
        if meta.get(b"avro.codec") == b"lzma":
            data = _plain(data, meta, sync, pos, where)
        return pl.read_avro(io.BytesIO(data))
    except BackupError:
        raise
    except OSError as e:
        raise BackupError(f"{where}: cannot be read: {e.strerror}") from None
    except (Exception, pl.exceptions.PanicException) as e:  # Polars' errors (a Rust panic is no Exception)
        raise BackupError(f"{where}: not a readable Avro container: {' '.join(str(e).split())[:200]}") from None

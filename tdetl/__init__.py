"""tdetl: columnar ETL for TDengine — sources and sinks exchanging Arrow batches.

The names below load on first use, so ``tdetl run`` imports only what its source and target need
(Polars, DuckDB and the parser stay unloaded for a restore)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .version import __version__

_EXPORTS = {
    "inspect": "api", "run": "api", "start": "api", "subscribe": "api", "verify": "api", "Dsn": "dsn",
    "parse_dsn": "dsn", "RunRequest": "request",
    "TdetlError": "errors",
    "Catalog": "model", "TableBatch": "model", "TableSpec": "model", "Summary": "progress",
    "query": "frames", "query_batches": "frames", "write": "frames",
}

if TYPE_CHECKING:
    from .api import inspect, run, start, subscribe, verify
    from .dsn import Dsn, parse_dsn
    from .errors import TdetlError
    from .frames import query, query_batches, write
    from .model import Catalog, TableBatch, TableSpec
    from .progress import Summary
    from .request import RunRequest


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tdetl' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = ["Catalog", "Dsn", "RunRequest", "Summary", "TableBatch", "TableSpec", "TdetlError", "__version__",
           "inspect", "parse_dsn", "query", "query_batches", "run", "start", "subscribe", "verify", "write"]

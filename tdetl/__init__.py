"""tdetl: columnar ETL for TDengine — sources and sinks exchanging Arrow batches."""

__version__ = "0.1.0"

from .api import inspect, run
from .dsn import Dsn, parse_dsn
from .errors import TdetlError
from .model import Catalog, TableBatch, TableSpec
from .progress import Summary

__all__ = [
           "Catalog",
           "Dsn",
           "Summary",
           "TableBatch",
           "TableSpec",
           "TdetlError",
           "__version__",
           "inspect",
           "parse_dsn",
           "run",
]

"""What the file sources (CSV, Parquet, ORC) share: a file, directory or glob of files, each file a
partition (``--jobs`` reads files in parallel, a cluster spreads them), read on the machine it runs
on, turned into tables by the parser's parse/model form (or a default) through table builders."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from ...capabilities import SourceCapabilities
from ...dsn import Dsn
from ...errors import ConfigError
from ...model import Catalog
from ...options import Options
from ...quality import Rejects
from ...source import Source
from ...transform.parser import TableBuilder
from .files import expand_files


class FileSource(Source):
    capabilities = SourceCapabilities(parser=True, partitions="files", local_files=True)
    kind: ClassVar[str] = ""  # the files' format, as messages name it

    def __init__(self, dsn: Dsn, options: Options, rejects: Rejects | None = None) -> None:
        super().__init__(dsn, options, rejects)
        parser = options.parser
        if parser is not None and parser.form != "fields":
            raise ConfigError(f"--parser: {self.kind} takes the parse/model form (the payload.json form is for"
                              " Kafka and MQTT messages)")
        if parser is not None and parser.json_fields:
            raise ConfigError(f"--parser: parse.{parser.json_fields[0][0]}: decoding JSON inside a field is for"
                              f" Kafka and MQTT messages, not {self.kind}")
        self.database = self.config["database"]
        self.files = expand_files(dsn.path, self.wanted, self.kind, dsn.masked())

    @abstractmethod
    def wanted(self, path: Path) -> bool:
        """Whether a file found in a directory is one of this source's."""

    @abstractmethod
    def builders(self) -> Iterable[TableBuilder]:
        """What turns the files' rows into tables (one for all files, or one per file)."""

    def catalog(self) -> Catalog:
        cat = Catalog()
        for builder in self.builders():
            for st in builder.stables():
                cat.add_stable(st)
            cat.precision = cat.precision or builder.precision
        return cat

    def partitions(self) -> list[str]:
        return [str(p) for p in self.files]

    def local_files(self) -> list[Path]:
        return list(self.files)

"""Every driver declares what it can do (tdetl/capabilities.py) in its own class, and what it
declares matches what it implements: the pipeline, the cluster, the run request and tdetl serve
act on the declarations alone."""

from __future__ import annotations

from typing import Any

import pytest

from tdetl.capabilities import SinkCapabilities, SourceCapabilities
from tdetl.cli import main
from tdetl.drivers import SINKS, SOURCES, driver_class
from tdetl.quality import TARGET_SITUATIONS
from tdetl.sink import RawTarget, Sink
from tdetl.source import Source


def _declared(name: str, role: str, kind: type) -> tuple[type, Any]:
    cls = driver_class(name, role)
    assert cls is not None and "capabilities" in vars(cls), f"{name} {role} declares no capabilities of its own"
    assert isinstance(cls.capabilities, kind)
    return cls, cls.capabilities


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_every_source_declares_its_capabilities(name: str) -> None:
    cls, caps = _declared(name, "source", SourceCapabilities)
    assert (cls.local_files is not Source.local_files) == caps.local_files
    assert (cls.direct_to is not Source.direct_to) == caps.raw
    assert caps.consumer == (caps.partitions in ("consumers", "sessions"))
    assert caps.default_jobs >= 1


@pytest.mark.parametrize("name", sorted(SINKS))
def test_every_sink_declares_its_capabilities(name: str) -> None:
    cls, caps = _declared(name, "target", SinkCapabilities)
    assert (cls.local_root is not Sink.local_root) == caps.local_files
    protocol = [m for m in vars(RawTarget) if not m.startswith("_")]
    raw_methods = [m for m in protocol if callable(getattr(cls, m, None))]
    assert raw_methods == (protocol if caps.raw else []), "a raw target implements all of RawTarget"
    assert caps.situations <= TARGET_SITUATIONS
    if caps.situations:
        assert caps.durable_flush, "a target deciding situations at write time flushes durably"


def test_capabilities_refuse_an_unknown_partition_kind() -> None:
    with pytest.raises(ValueError, match="partitions"):
        SourceCapabilities(partitions="rows")


def test_tdetl_drivers_shows_capabilities(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["drivers", "tmq"]) == 0
    out = capsys.readouterr().out
    assert "consumer group" in out and "raw TMQ messages to a raw target" in out
    assert main(["drivers", "taos"]) == 0
    out = capsys.readouterr().out
    assert "partitions: tables; default jobs: 4" in out and "takes raw TMQ messages" in out
    assert "upserts" in out and "decides --on" in out
    assert main(["drivers", "duckdb"]) == 0
    assert "durable only at the end of a run" in capsys.readouterr().out

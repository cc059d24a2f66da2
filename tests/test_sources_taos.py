"""The time-series and OPC UA sources into a real TDengine server (opt-in, as in
test_taos_integration: TDETL_TEST_TAOS and/or TDETL_TEST_TAOSWS). Each source runs against the same
real or in-test server as its own tests; what TDengine holds afterwards must equal what was written."""

from __future__ import annotations

from pathlib import Path

import tdetl

from .fakes.influx2_server import Influx2Server
from .fakes.opentsdb_server import OpenTSDBServer
from .services import Influxd, OpcUaServers, free_port
from .taos_helpers import pytestmark  # noqa: F401 - marks and skips
from .taos_helpers import read_back as _read_back
from .test_influxdb import _db as influx_db
from .test_influxdb import _points as influx_points
from .test_influxdb import _url as influx_url
from .test_influxdb2 import ORG, TOKEN
from .test_influxdb2 import _load as influx2_load
from .test_influxdb2 import _url as influx2_url
from .test_opcua import _samples
from .test_opcua import _url as opcua_url
from .test_opentsdb import END as TSDB_END
from .test_opentsdb import _load as tsdb_load
from .test_opentsdb import _url as tsdb_url


def test_influxdb_1x_into_taos(server: str, db: str, influxd: Influxd) -> None:
    idb = influx_db(influxd)
    lines, want = influx_points(60)
    influxd.write(idb, lines)
    tdetl.run(influx_url(influxd, idb, endTime="2023-11-14T22:30:00Z"), f"{server}/{db}?assert")
    for got in _read_back(db, "SELECT CAST(ts AS BIGINT) AS t, `line`, `sensor`, `value`, `count`, `ok`, `status`"
                              " FROM plant ORDER BY ts"):
        assert [tuple(r.values()) for r in got.to_pylist()] == want


def test_influxdb_2x_into_taos(server: str, db: str) -> None:
    with Influx2Server(ORG, TOKEN) as s:
        want = influx2_load(s, 60)
        tdetl.run(influx2_url(s, endTime="2023-11-14T22:30:00Z"), f"{server}/{db}?assert")
    sql = "SELECT CAST(ts AS BIGINT) AS t, `line`, `sensor`, `value`, `count`, `big`, `ok`, `status` FROM plant"
    for got in _read_back(db, sql + " ORDER BY ts"):
        assert [tuple(r.values()) for r in got.to_pylist()] == want


def test_opentsdb_into_taos(server: str, db: str) -> None:
    with OpenTSDBServer() as s:
        want = tsdb_load(s, 60)
        tdetl.run(tsdb_url(s, endTime=TSDB_END), f"{server}/{db}?assert")
    for got in _read_back(db, "SELECT CAST(ts AS BIGINT) AS t, `dc`, `host`, `value` FROM sys_cpu_user ORDER BY ts"):
        assert [tuple(r.values()) for r in got.to_pylist()] == want["sys.cpu.user"]


def test_opcua_into_taos(server: str, db: str, opcua: OpcUaServers, tmp_path: Path) -> None:
    port = free_port()
    opcua.start(port, "--samples", "20", "--delay", "1.5")
    tdetl.run(opcua_url(port), f"{server}/{db}?assert")
    written = _samples(opcua)
    for got in _read_back(db, "SELECT valueaa, CAST(ts_2 AS BIGINT) AS src, quality11 FROM meters_varchar"
                              " ORDER BY ts"):
        rows = got.to_pylist()
        assert [r["valueaa"] for r in rows] == ["init"] + [f"s{w['k']}" for w in written]
        assert [(r["src"], r["quality11"]) for r in rows[1:]] == [(w["us"], w["state_status"]) for w in written]
    for got in _read_back(db, "SELECT tbname, point_id, valueaa FROM meters_int ORDER BY ts"):
        rows = got.to_pylist()
        assert [r["valueaa"] for r in rows] == [-1] + [w["k"] for w in written]
        assert {(r["tbname"], r["point_id"]) for r in rows} == {("DSF1313", "ns=2;s=Plant.Counter")}

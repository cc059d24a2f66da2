"""The OPC UA source against a real asyncua server process on loopback: what arrives is compared
with what the server logged writing (values, source timestamps, status codes)."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

import tdetl
from tdetl.errors import DsnError, SourceError

from .conftest import Background, run_cli
from .services import OpcUaServers, free_port

SEED_CONFIG = {"stable_prefix": "meters", "column_configs": [
    {"column_name": "received_time", "column_type": "timestamp", "column_alias": "ts", "is_primary_key": True},
    {"column_name": "original_time", "column_type": "timestamp", "column_alias": "ts_2", "is_primary_key": False},
    {"column_name": "value", "column_alias": "valueaa", "is_primary_key": False},
    {"column_name": "quality", "column_type": "int", "column_alias": "quality11", "is_primary_key": False}]}
NODES = [("Temperature", "DSF1312"), ("Counter", "DSF1313"), ("Running", "DSF1314"), ("State", "DSF1315")]


def _nodes() -> str:
    return ",".join(f"ns=2;s=Plant.{n}::{code}" for n, code in NODES)


def _url(port: int, **params: str) -> str:
    q = {"ua.nodes": _nodes(), "opc_table_config": json.dumps(SEED_CONFIG), "interval": "0.2",
         "batch_timeout": "1", "timeout": "2s", **params}
    return f"opcua://127.0.0.1:{port}?" + "&".join(f"{k}={v}" for k, v in q.items() if v is not None)


def _rows(path: Path, sql: str) -> list[Any]:
    with duckdb.connect(str(path)) as con:
        return con.execute(sql).fetchall()


def _samples(servers: OpcUaServers) -> list[dict[str, Any]]:
    return [w for w in servers.written() if "k" in w]


def test_seed_table_config_by_subscription(opcua: OpcUaServers, tmp_path: Path) -> None:
    port = free_port()
    opcua.start(port, "--samples", "30", "--delay", "1.5")
    out = tmp_path / "o.duckdb"
    s = tdetl.run(_url(port), f"duckdb:{out}")
    written = _samples(opcua)
    assert len(written) == 30
    assert s.rows_written == 4 * 31  # the value each node had when subscribed, then every sample
    want = {"meters_double": [-1.0] + [20 + w["k"] / 4 for w in written],
            "meters_int": [-1] + [w["k"] for w in written],
            "meters_bool": [False] + [w["k"] % 2 == 0 for w in written],
            "meters_varchar": ["init"] + [f"s{w['k']}" for w in written]}
    for stable, values in want.items():
        rows = _rows(out, f"SELECT tbname, point_id, epoch_us(ts), epoch_us(ts_2), valueaa, quality11 FROM {stable}"
                          " ORDER BY ts")
        assert [r[4] for r in rows] == values, stable
        assert [r[3] for r in rows[1:]] == [w["us"] for w in written]  # source timestamps, as written
        assert all(a[2] < b[2] for a, b in itertools.pairwise(rows))  # received time: a strictly rising key
        assert {(r[0], r[1]) for r in rows} <= {(c, f"ns=2;s=Plant.{n}") for n, c in NODES}
        quality = [r[5] for r in rows[1:]]
        if stable == "meters_varchar":
            assert quality == [w["state_status"] for w in written]
            assert quality[9] == 0x40900000  # UncertainLastUsableValue, as the server wrote it
        else:
            assert set(quality) == {0}
    types = dict(_rows(out, "SELECT column_name, data_type FROM information_schema.columns"
                            " WHERE table_name = 'meters_int'"))
    assert (types["ts"], types["ts_2"], types["valueaa"], types["quality11"]) == (
        "TIMESTAMP", "TIMESTAMP", "INTEGER", "INTEGER")


def test_csv_point_config(opcua: OpcUaServers, tmp_path: Path) -> None:
    port = free_port()
    opcua.start(port, "--samples", "20", "--delay", "1.5")
    cfg = tmp_path / "points.csv"
    cfg.write_text(
        "point_id,stable,tbname,enabled,ts_col,received_time_col,value_col,quality_col,type,"
        "tag::varchar(16)::unit,tag::int::line\n"
        "ns=2;s=Plant.Temperature,plant,temp_1,true,src_ts,,temperature,q,,degC,1\n"
        "ns=2;s=Plant.Counter,counts,count_1,1,,recv_ts,n,,bigint,pcs,2\n"
        "ns=2;s=Plant.State,plant_text,state_1,false,,,,,,,3\n")
    out = tmp_path / "c.duckdb"
    tdetl.run(f"opc+ua://127.0.0.1:{port}/etl/?csv_config_file=@{cfg}&interval=0.2&batch_timeout=1&timeout=2s"
              "&concurrent=2",  # one session per point
              f"duckdb:{out}")
    written = _samples(opcua)
    rows = _rows(out, "SELECT tbname, unit, line, epoch_us(src_ts), temperature, q FROM plant ORDER BY src_ts")
    assert [r[4] for r in rows] == [-1.0] + [20 + w["k"] / 4 for w in written]
    assert [r[3] for r in rows[1:]] == [w["us"] for w in written]
    assert {r[:3] for r in rows} == {("temp_1", "degC", 1)} and {r[5] for r in rows} == {0}
    counts = _rows(out, "SELECT tbname, unit, line, n FROM counts ORDER BY recv_ts")
    assert [r[3] for r in counts] == [-1] + [w["k"] for w in written]
    types = dict(_rows(out, "SELECT column_name, data_type FROM information_schema.columns WHERE table_name='counts'"))
    assert types["n"] == "BIGINT" and "ts" not in types  # the CSV's type wins; only the named columns
    with duckdb.connect(str(out)) as con:
        assert "plant_text" not in {r[0] for r in con.execute("SHOW TABLES").fetchall()}  # disabled


def test_polling_reads_each_change_once(opcua: OpcUaServers, tmp_path: Path) -> None:
    port = free_port()
    opcua.start(port, "--samples", "20", "--delay", "1.5", "--period", "0.2")
    out = tmp_path / "p.duckdb"
    tdetl.run(_url(port, mode="observe", interval="0.05"), f"duckdb:{out}")
    by_k = {w["k"]: w["us"] for w in _samples(opcua)}
    rows = _rows(out, "SELECT valueaa, epoch_us(ts_2) FROM meters_int ORDER BY ts")
    assert rows[0][0] == -1
    got = rows[1:]
    assert len(got) >= 15, got  # a 50 ms poll of 200 ms changes misses at most a few under load
    assert [k for k, _ in got] == sorted({k for k, _ in got})  # each change once, in order
    assert all(us == by_k[k] for k, us in got)  # each value with the source timestamp it was written with


def _certs(d: Path) -> tuple[Path, Path, Path, Path]:
    import asyncio

    from asyncua.crypto.cert_gen import setup_self_signed_certificate
    from cryptography.x509.oid import ExtendedKeyUsageOID

    files = (d / "server.der", d / "server.pem", d / "client.der", d / "client.pem")

    async def make() -> None:
        await setup_self_signed_certificate(files[1], files[0], "urn:etl:test:server", "localhost",
                                            [ExtendedKeyUsageOID.SERVER_AUTH], {"commonName": "etl test server"})
        await setup_self_signed_certificate(files[3], files[2], "urn:tdetl:client", "localhost",
                                            [ExtendedKeyUsageOID.CLIENT_AUTH], {"commonName": "tdetl"})

    asyncio.run(make())
    return files


def test_security_mode_sign_with_generated_certificates(opcua: OpcUaServers, tmp_path: Path) -> None:
    server_cert, server_key, client_cert, client_key = _certs(tmp_path)
    port = free_port()
    opcua.start(port, "--samples", "10", "--delay", "2", "--sign", str(server_cert), str(server_key))
    out = tmp_path / "s.duckdb"
    tdetl.run(_url(port, security_policy="Basic256Sha256", security_mode="Sign", certificate=str(client_cert),
                   private_key=str(client_key)), f"duckdb:{out}")
    assert [r[0] for r in _rows(out, "SELECT valueaa FROM meters_int ORDER BY ts")] == [-1, *range(10)]
    with pytest.raises(SourceError, match="cannot connect to OPC UA server") as e:  # no security: refused
        tdetl.run(_url(port), f"duckdb:{tmp_path / 'n.duckdb'}")
    assert "\n" not in str(e.value)


def test_server_restart_mid_run_loses_no_later_value(opcua: OpcUaServers, tmp_path: Path) -> None:
    port = free_port()
    first = opcua.start(port, "--samples", "20", "--delay", "1.5")
    out = tmp_path / "r.duckdb"
    run = Background(_url(port, timeout="5s"), f"duckdb:{out}")  # idle time pauses while reconnecting
    deadline = time.monotonic() + 30
    while not any(w.get("done") for w in opcua.written()) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.6)  # a publishing interval and more: the first server's values are delivered
    opcua.kill(first)
    time.sleep(0.5)
    opcua.start(port, "--samples", "20", "--start", "100", "--wait-subscriber")  # writes once re-subscribed
    run.join(90)
    values = [r[0] for r in _rows(out, "SELECT valueaa FROM meters_int ORDER BY ts")]
    assert [v for v in values if v >= 0] == [*range(20), *range(100, 120)]
    assert values.count(-1) == 2  # the value the new server started with, reported on re-subscribing


def test_raw_data_is_kept_and_old_days_removed(opcua: OpcUaServers, tmp_path: Path) -> None:
    port = free_port()
    opcua.start(port, "--samples", "10", "--delay", "1.5")
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "opcua-2000-01-01.jsonl").write_text("{}\n")
    s = tdetl.run(_url(port, enable="true", path=str(raw), keep="3"), f"duckdb:{tmp_path / 'k.duckdb'}")
    files = sorted(p.name for p in raw.iterdir())
    assert len(files) == 1 and files[0] != "opcua-2000-01-01.jsonl"
    kept = [json.loads(x) for x in (raw / files[0]).read_text().splitlines()]
    assert len(kept) == s.rows_written
    counter = [k["value"] for k in kept if k["point_id"] == "ns=2;s=Plant.Counter"]
    assert counter == [-1, *range(10)]


@pytest.mark.parametrize("params,match", [
    ({"ua.nodes": None, "opc_table_config": None}, "name the points with csv_config_file"),
    ({"opc_table_config": None}, "ua.nodes needs opc_table_config"),
    ({"ua.nodes": "ns=2;i=2"}, "ua.nodes item 'ns=2;i=2' must be <nodeid>::<code>"),
    ({"opc_table_config": "{stable_prefix"}, "opc_table_config is not JSON"),
    ({"opc_table_config": json.dumps({"column_configs": [{"column_name": "value", "is_primary_key": True}]})},
     r"column_configs\[0\]: the primary key must be received_time or original_time"),
    ({"opc_table_config": json.dumps({"column_configs": [{"column_name": "speed"}]})}, "column_name 'speed'"),
    ({"security_policy": "Basic256Sha256"}, "both must be None"),
    ({"security_policy": "Basic512", "security_mode": "Sign"},
     r"opcua parameter security_policy='Basic512' is not valid: expected None\|Basic128Rsa15"),
    ({"security_policy": "Basic256", "security_mode": "Sign"}, "needs certificate"),
    ({"enable": "true"}, "enable=true .* needs path"),
    ({"mode": "push"}, r"mode='push' is not valid: expected subscribe\|observe"),
    ({"ua.nodes": "ns=2;s=A::t1,ns=2;s=B::t1"}, "two points write child table 't1'"),
])
def test_bad_params_are_one_line(params: dict[str, str | None], match: str) -> None:
    with pytest.raises(DsnError, match=match) as e:
        tdetl.run(_url(9, **params), "duckdb:/tmp/never.duckdb")  # type: ignore[arg-type]
    assert "\n" not in str(e.value)


def test_bad_csv_config_and_opc_da(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.csv"
    cfg.write_text("point_id,stable\nns=2;i=2,plant\n")
    with pytest.raises(DsnError, match="csv_config_file has no tbname column"):
        tdetl.run(f"opcua://127.0.0.1:9?csv_config_file=@{cfg}", "duckdb:/tmp/never.duckdb")
    cfg.write_text("point_id,tbname,type\nns=2;i=2,t1,floaty\n")
    with pytest.raises(DsnError, match=r"csv_config_file line 2: type: unknown type 'floaty'"):
        tdetl.run(f"opcua://127.0.0.1:9?csv_config_file=@{cfg}", "duckdb:/tmp/never.duckdb")
    with pytest.raises(DsnError, match="OPC DA needs Windows"):
        tdetl.run("opc+da://127.0.0.1:9?da.tags=x", "duckdb:/tmp/never.duckdb")


def test_server_side_errors_are_one_line_without_the_password(opcua: OpcUaServers, tmp_path: Path) -> None:
    port = free_port()
    opcua.start(port, "--samples", "0")
    res = run_cli("run", "-f", _url(port, **{"ua.nodes": "ns=2;s=Plant.Nope::x1"}), "-t",
                  f"duckdb:{tmp_path / 'x.duckdb'}")
    assert res.returncode == 1 and "the server has no node ns=2;s=Plant.Nope (BadNodeIdUnknown)" in res.stderr
    url = _url(9).replace("opcua://", "opcua://op:s3cret@")
    res = run_cli("run", "-f", url + "&connect_timeout=2", "-t", f"duckdb:{tmp_path / 'x.duckdb'}")
    assert res.returncode == 1 and "cannot connect to OPC UA server at opc.tcp://127.0.0.1:9/" in res.stderr
    assert "s3cret" not in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr

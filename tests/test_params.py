"""Driver parameters come from one spec per driver (tdetl/params.py): parsing, errors, masking,
`tdetl drivers`, the generated reference page's driver tables, and the drift the per-driver parsing had."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tdetl.drivers import SINKS, SOURCES, driver_class, open_sink, open_source
from tdetl.dsn import parse_dsn
from tdetl.errors import ConfigError, DsnError
from tdetl.params import Param, Spec, instant_ns
from tdetl.pipeline import Options

from .conftest import run_cli

SPEC = Spec(Param("n", "int", 3, minimum=1), Param("wait", "duration", 1.0, never=True),
            Param("ms", "duration", 0.5, unit="ms"), Param("on", "flag", False), Param("how", "choice", "a",
            choices=("a", "b")), Param("items", "list"), Param("pem", "file"), Param("key", "text", secret=True),
            Param("group", "text", "g", aliases=("group.id",)))


def test_a_spec_parses_every_kind_with_defaults() -> None:
    cfg = SPEC.parse(parse_dsn("xx://h:1/o"), "xx")
    assert dict(cfg) == {"n": 3, "wait": 1.0, "ms": 0.5, "on": False, "how": "a", "items": (), "pem": None,
                         "key": None, "group": "g"}
    cfg = SPEC.parse(parse_dsn("xx://h:1/o?n=7&wait=never&ms=250&on&how=b&items=a,b&items=c&key=k&group.id=z"), "xx")
    assert (cfg["n"], cfg["wait"], cfg["ms"], cfg["on"], cfg["how"], cfg["items"], cfg["group"]) == (
        7, None, 0.25, True, "b", ("a", "b", "c"), "z")
    assert SPEC.parse(parse_dsn("xx://h/o?wait=2m&ms=3s"), "xx")["wait"] == 120.0
    assert SPEC.parse(parse_dsn("xx://h/o?ms=3s"), "xx")["ms"] == 3.0  # a unit suffix is always allowed


@pytest.mark.parametrize("text,ns", [
    ("2023-06-01T00:00:00+0800", 1685548800 * 10**9), ("2023-06-01T00:00:00+08:00", 1685548800 * 10**9),
    ("2023-05-31T16:00:00Z", 1685548800 * 10**9), ("2023-06-01T00:00:00 0800", 1685548800 * 10**9),
    ("2023-05-31 16:00:00.000000001Z", 1685548800 * 10**9 + 1), ("2023-05-31T16:00:00.5+00:00", 1685548800_5 * 10**8),
])
def test_one_instant_form_for_every_driver(text: str, ns: int) -> None:
    assert instant_ns(text) == ns
    spec = Spec(Param("at", "instant"))
    assert spec.parse(parse_dsn(f"xx://h/o?at={text.replace('+', '%2B')}"), "xx")["at"] == ns
    for bad, why in (("2023-06-01T00:00:00", "needs a zone"), ("yesterday", "is not a time like")):
        with pytest.raises(DsnError, match=f"xx parameter at: '{bad}' {why}"):
            spec.parse(parse_dsn(f"xx://h/o?at={bad}"), "xx")


def test_list_and_file_parameters_read_at_files(tmp_path: Path) -> None:
    (tmp_path / "items.txt").write_text("a\n\nb\n")
    (tmp_path / "cert.pem").write_text("-----BEGIN X-----\n")
    cfg = SPEC.parse(parse_dsn(f"xx://h/o?items=@{tmp_path}/items.txt&items=c&pem=@{tmp_path}/cert.pem"), "xx")
    assert cfg["items"] == ("a", "b", "c") and cfg["pem"] == "-----BEGIN X-----\n"


@pytest.mark.parametrize("query,match", [
    ("n=0", r"xx parameter n='0' is not valid: expected integer >= 1"),
    ("n=many", r"xx parameter n='many' is not valid: expected integer"),
    ("wait=soon", r"xx parameter wait='soon' is not valid: expected duration like 500ms.*or never"),
    ("on=maybe", r"xx parameter on='maybe' is not valid: expected flag"),
    ("how=c", r"xx parameter how='c' is not valid: expected a\|b"),
    ("nn=1", r"unknown parameter 'nn' for xx \(did you mean 'n'\? known: n, wait, .*see tdetl drivers xx\)"),
])
def test_bad_parameters_name_the_parameter_driver_and_form(query: str, match: str) -> None:
    with pytest.raises(DsnError, match=match) as e:
        SPEC.parse(parse_dsn(f"xx://u:pw@h:1/o?{query}"), "xx")
    assert "\n" not in str(e.value) and ":pw@" not in str(e.value)


@pytest.mark.parametrize("value", ["0", "four"])
def test_taos_writers_must_be_a_positive_integer(value: str) -> None:
    with pytest.raises(DsnError, match=rf"taos parameter writers='{value}' is not valid: expected integer >= 1") as e:
        open_sink(f"taos://root:pw@localhost:6030/db?writers={value}", Options())
    assert "\n" not in str(e.value) and ":pw@" not in str(e.value)


def test_secret_parameters_are_masked() -> None:
    with pytest.raises(DsnError) as e:
        SPEC.parse(parse_dsn("xx://h/o?key=hunter2&n=0"), "xx")
    assert "hunter2" not in str(e.value) and "key=***" in str(e.value)
    assert "s3cr3t" not in parse_dsn("kafka://h:9092?topics=t&cert_key=s3cr3t").masked()  # kafka's spec is loaded


def test_kafka_timeout_bare_number_is_milliseconds_elsewhere_seconds() -> None:
    def idle(dsn: str) -> Any:
        return open_source(dsn, Options()).config["timeout"]
    assert idle("kafka://h:9092?topics=t&timeout=500") == 0.5
    assert idle("kafka://h:9092?topics=t&timeout=2s") == 2.0
    assert idle("kafka://h:9092?topics=t&timeout=never") is None
    assert idle("kafka://h:9092?topics=t") == 0.5
    assert idle("mqtt://h:1883?topics=a&client_id=c&timeout=5") == 5.0
    assert idle("mqtt://h:1883?topics=a&client_id=c") is None


def test_list_parameters_repeat_and_take_files(tmp_path: Path) -> None:
    (tmp_path / "m.txt").write_text("cpu\nmem\n")
    begin = "beginTime=2023-01-01T00:00:00Z"
    src = open_source(f"influxdb+http://h:8086/?version=1.8&bucket=b&{begin}&measurements=@{tmp_path}/m.txt"
                      "&measurements=disk", Options())
    assert src.measurements == ["cpu", "mem", "disk"]
    src = open_source(f"opentsdb+http://h:4242/?{begin}&metrics=a.b&metrics=@{tmp_path}/m.txt", Options())
    assert src.metrics == ["a.b", "cpu", "mem"]
    src = open_source("mqtt://h:1883?topics=a/%2B/b::1&topics=c/%23&client_id=x", Options())
    assert src.topics == [("a/+/b", 1), ("c/#", 0)]


def test_mqtt_log_level_is_checked_and_used() -> None:
    with pytest.raises(DsnError, match="log_level='loud'"):
        open_source("mqtt://h:1883?topics=a&client_id=c&log_level=loud", Options())
    assert open_source("mqtt://h:1883?topics=a&client_id=c&log_level=debug", Options()).log_level == 10


@pytest.mark.parametrize("dsn", [
    "taos://h:6030/db", "local:/nowhere", "influxdb+http://h:8086/?version=1.8&bucket=b&beginTime=2023-01-01T00:00:00Z",
    "opentsdb+http://h:4242/?beginTime=2023-01-01T00:00:00Z", "opcua://h:4840?ua.nodes=ns=2;s=x::c",
])
def test_sources_that_do_not_read_a_parser_refuse_one(dsn: str) -> None:
    with pytest.raises(ConfigError, match="does not use --parser"):
        open_source(dsn, Options(parser=object()))


def _classes() -> list[tuple[str, str, Any]]:
    seen, out = set(), []
    for name in sorted(set(SOURCES) | set(SINKS), key=lambda n: (-len(n), n)):  # opcua before its alias opc
        for role in ("source", "target"):
            cls = driver_class(name, role)
            if cls is not None and (cls, role) not in seen:
                seen.add((cls, role))
                out.append((name, role, cls))
    return out


def _page_section(driver: str, role: str) -> str:
    """The generated reference page's section for a driver (the one it points to, for an alias)."""
    from tdetl.reference import drivers_page

    page = drivers_page()
    section = re.search(rf"^## `{re.escape(driver)}` as a {role}\n(.*?)(?=^## |\Z)", page, re.S | re.M)
    assert section, f"the drivers page has no section for {driver} as a {role}"
    same = re.search(r"The same driver as \[`([^`]+)`\]", section.group(1))
    return _page_section(same.group(1), role) if same else section.group(1)


@pytest.mark.parametrize("driver,role,cls", _classes(), ids=lambda v: v if isinstance(v, str) else "")
def test_the_reference_page_documents_every_parameter_of_every_driver(driver: str, role: str, cls: Any) -> None:
    text = _page_section(driver, role)
    rows = set(re.findall(r"^\| `([^`]+)`", text, re.M))
    missing = [p.name for p in cls.spec if p.name not in rows]
    assert not missing, f"the drivers page does not document {driver} {role} parameters {missing}"
    for p in cls.spec:
        assert all(f"`{a}`" in text for a in p.aliases), (driver, p.name, p.aliases)
        assert p.help.replace("|", "\\|").replace("\n", " ") in text, (driver, p.name)


def test_tdetl_drivers_lists_drivers_and_their_parameters() -> None:
    res = run_cli("drivers")
    assert res.returncode == 0 and all(re.search(rf"^{d}\s", res.stdout, re.M) for d in SOURCES)
    res = run_cli("drivers", "kafka")
    assert res.returncode == 0
    for p in driver_class("kafka", "source").spec:  # type: ignore[union-attr]
        assert re.search(rf"^  {re.escape(p.name)}\b.*{re.escape(p.help[:20])}", res.stdout, re.M), p.name
    assert "group, group.id" in res.stdout and "bare number: ms" in res.stdout
    res = run_cli("drivers", "ftp")
    assert res.returncode == 1 and "unknown driver 'ftp'" in res.stderr

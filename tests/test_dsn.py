from __future__ import annotations

from pathlib import Path

import pytest

from tdetl.drivers import open_sink, open_source
from tdetl.dsn import parse_dsn
from tdetl.errors import DsnError
from tdetl.pipeline import Options


def test_full_form() -> None:
    d = parse_dsn("tmq+ws://root:taos%40data@localhost:6030/db1?timeout=never&group.id=g1&assert")
    assert (d.driver, d.protocol, d.user, d.password, d.host, d.port, d.object) == (
        "tmq", "ws", "root", "taos@data", "localhost", 6030, "db1")
    assert d.get("timeout") == "never" and d.get("group.id") == "g1"
    assert d.has("assert") and d.get("assert") == ""
    assert "taos@data" not in d.masked() and "***" in d.masked()
    assert d.without_password() == "tmq+ws://root@localhost:6030/db1?timeout=never&group.id=g1&assert"


def test_short_forms_and_paths() -> None:
    assert parse_dsn("local:/path_directory/").path == Path("/path_directory")
    assert parse_dsn("local:///abs/dir").path == Path("/abs/dir")
    assert parse_dsn("csv:./file.csv.gz").path == Path("file.csv.gz")
    d = parse_dsn("taos:///db")
    assert d.host is None and d.object == "db"
    d = parse_dsn("taos://td1:6030/db1.meters?stables=a,b&stables=c&tables=x%20y")
    assert d.object == "db1.meters" and d.get_all("stables") == ["a", "b", "c"]
    assert d.get("tables") == "x y"
    assert parse_dsn("taos://[::1]:6030/db").host == "::1"


def test_at_file_values(tmp_path: Path) -> None:
    (tmp_path / "tables.txt").write_text("meters.d0\n\nd1\n")
    (tmp_path / "cfg.json").write_text('{"a": 1}')
    d = parse_dsn(f"taos:///db?tables=@{tmp_path}/tables.txt&opc_table_config=@{tmp_path}/cfg.json")
    assert d.get_all("tables") == ["meters.d0", "d1"]
    assert d.value("opc_table_config") == '{"a": 1}'
    with pytest.raises(DsnError, match=r"cannot read .*missing\.txt"):
        parse_dsn(f"taos:///db?tables=@{tmp_path}/missing.txt").get_all("tables")


@pytest.mark.parametrize("text,match", [
    ("nonsense", "malformed DSN 'nonsense'"),
    ("taos://root:secret@host:99999/db", "port '99999'"),
    ("taos://root:secret@host:abc/db", "port 'abc'"),
    ("c:/windows/path", "malformed DSN"),
    ("taos://h:6030/db?=x", "has no name"),
])
def test_malformed(text: str, match: str) -> None:
    with pytest.raises(DsnError, match=match) as e:
        parse_dsn(text)
    assert "secret" not in str(e.value) and "\n" not in str(e.value)


def test_unknown_driver_and_param_errors_mask_password(tmp_path: Path) -> None:
    with pytest.raises(DsnError, match="unknown source driver 'ftp'") as e:
        open_source("ftp://u:hunter2@h:21/x", Options())
    assert "hunter2" not in str(e.value) and "***" in str(e.value)
    with pytest.raises(DsnError, match="unknown parameter 'compresion'"):
        open_sink(f"local:{tmp_path}/b?compresion=zstd", Options())
    with pytest.raises(DsnError, match=r"local parameter compression='brotli' is not valid: expected zstd\|lz4\|none"):
        open_sink(f"local:{tmp_path}/b?compression=brotli", Options())
    with pytest.raises(DsnError, match="level='high' is not valid: expected integer"):
        open_sink(f"local:{tmp_path}/b?level=high", Options())
    with pytest.raises(DsnError, match="does not speak 'ws'"):
        open_sink(f"local+ws:{tmp_path}/b", Options())


@pytest.mark.parametrize("password", ["Pw/Slash99", "At99x@", "a@b/c@d", "p%2Fq%40r"])
def test_passwords_with_slash_or_at_parse_and_never_show(password: str) -> None:
    from urllib.parse import unquote

    d = parse_dsn(f"taos+ws://u:{password}@db.example:6041/power?token=T0kenX&x=1")
    assert (d.user, d.password, d.host, d.port, d.object) == ("u", unquote(password), "db.example", 6041, "power")
    assert d.masked() == "taos+ws://u:***@db.example:6041/power?token=***&x=1"
    assert d.without_password() == "taos+ws://u@db.example:6041/power?x=1"
    with pytest.raises(DsnError) as e:
        parse_dsn(f"taos://u:{password}@h:99999/db")
    assert password not in str(e.value) and unquote(password) not in str(e.value)


def test_secret_parameters_are_left_out_of_what_runs_record() -> None:
    assert parse_dsn("taos+ws://h:6041/db?token=abc").without_password() == "taos+ws://h:6041/db"
    assert parse_dsn("influxdb://h:8086/b?password=p&org=o&token=t").without_password() == "influxdb://h:8086/b?org=o"

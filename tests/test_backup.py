"""Backups resume after a crash with every row exactly once; damaged backups are refused."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import duckdb
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tdetl
from tdetl.errors import BackupError, TdetlError

from .conftest import run_cli
from .json_paths import json_paths
from .samples import PARSER, meters


def _source(tmp: Path, rows: int, files: int = 1) -> str:
    df = meters(rows, tables=20)
    step = rows // files
    for i in range(files):
        df.slice(i * step, step).write_csv(tmp / f"m{i}.csv")
    return json.dumps(PARSER)


def _restored(tmp: Path, backup: Path) -> pl.DataFrame:
    db = tmp / f"check-{backup.name}.duckdb"
    tdetl.run(f"local:{backup}", f"duckdb:{db}")
    df = pl.from_arrow(duckdb.connect(str(db)).sql("SELECT * FROM meters").to_arrow_table())
    return df.sort("tbname", "ts")


def _expected(rows: int) -> pl.DataFrame:
    df = meters(rows, tables=20)
    return df.with_columns(pl.col("ts").cast(pl.Datetime("ms"))).select(
        "tbname", "groupid", "location", "ts", "current", "voltage", "phase").sort("tbname", "ts")


def test_sigkill_mid_backup_then_rerun_is_exactly_once(tmp_path: Path) -> None:
    rows = 400_000
    parser = _source(tmp_path, rows, files=2)
    backup = tmp_path / "bk"
    cmd = [sys.executable, "-m", "tdetl", "run", "-f", f"csv:{tmp_path}/m*.csv", "-p", parser,
           "-t", f"local:{backup}?file_rows=2000", "--batch-rows", "2000", "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    journal = backup / "journal.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if journal.exists() and journal.read_text().count("\n") >= 8:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the backup finished before it could be killed"
    assert not (backup / "manifest.json").exists()
    done_before = journal.read_text().count('"path"')
    assert done_before > 0

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert (backup / "manifest.json").exists() and not journal.exists()
    got = _restored(tmp_path, backup)
    assert got.height == rows
    assert got.select(pl.struct("tbname", "ts").is_unique().all()).item()
    assert got.equals(_expected(rows))


def test_torn_journal_line_and_orphan_file_are_recovered(tmp_path: Path) -> None:
    rows = 20_000
    parser = _source(tmp_path, rows)
    backup = tmp_path / "bk"
    src, dst = f"csv:{tmp_path}/m0.csv", f"local:{backup}?file_rows=1000"
    tdetl.run(src, dst, parser=parser, batch_rows=1000)
    manifest = json.loads((backup / "manifest.json").read_text())
    # turn the complete backup back into a crashed one: drop the manifest, keep half the files
    # journaled, leave one written-but-unjournaled file and a torn journal line
    files = manifest["files"]
    keep = files[: len(files) // 2]
    head = {"journal": "tdetl-backup", "version": 1, "source": src, "created": manifest["created"],
            "compression": manifest["compression"]}
    lines = [head, {"databases": [], "stables": manifest["stables"], "tables": []},
             {"files": keep, "stables": manifest["stables"], "tables": manifest["tables"],
              "checkpoint": {str(tmp_path / "m0.csv"): {"row": sum(f["rows"] for f in keep)}}}]
    (backup / "manifest.json").unlink()
    (backup / "journal.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"files": [{"pa')
    orphan = files[len(files) // 2]["path"]
    assert (backup / orphan).exists()
    for f in files[len(files) // 2 + 1:]:
        (backup / f["path"]).unlink()

    tdetl.run(src, dst, parser=parser, batch_rows=1000)
    got = _restored(tmp_path, backup)
    assert got.equals(_expected(rows))


def test_corrupt_file_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    parser = _source(tmp_path, 5_000)
    backup = tmp_path / "bk"
    tdetl.run(f"csv:{tmp_path}/m0.csv", f"local:{backup}?file_rows=1000", parser=parser, batch_rows=1000)
    entry = json.loads((backup / "manifest.json").read_text())["files"][-1]
    path = backup / entry["path"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    out = tmp_path / "out.duckdb"
    res = run_cli("run", "-f", f"local:{backup}", "-t", f"duckdb:{out}")
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1 and str(path) in res.stderr and "corrupt" in res.stderr
    if out.exists():
        tables = duckdb.connect(str(out)).sql("SELECT table_name FROM information_schema.tables").fetchall()
        assert tables == []


def test_refusals(tmp_path: Path) -> None:
    parser = _source(tmp_path, 1_000)
    src = f"csv:{tmp_path}/m0.csv"
    backup = tmp_path / "bk"
    tdetl.run(src, f"local:{backup}", parser=parser)
    with pytest.raises(BackupError, match="already holds a complete backup"):
        tdetl.run(src, f"local:{backup}", parser=parser)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x.txt").write_text("mine")
    with pytest.raises(BackupError, match="not empty"):
        tdetl.run(src, f"local:{tmp_path / 'busy'}", parser=parser)
    with pytest.raises(BackupError, match="not a tdetl backup"):
        tdetl.run(f"local:{tmp_path / 'busy'}", f"duckdb:{tmp_path / 'x.duckdb'}")
    manifest = json.loads((backup / "manifest.json").read_text())
    manifest["version"] = 99
    (backup / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BackupError, match="version 99 is not supported"):
        tdetl.run(f"local:{backup}", f"duckdb:{tmp_path / 'x.duckdb'}")


def test_unfinished_backup_of_another_source_is_not_mixed(tmp_path: Path) -> None:
    parser = _source(tmp_path, 2_000, files=2)
    backup = tmp_path / "bk"
    (backup).mkdir()
    head = {"journal": "tdetl-backup", "version": 1, "source": "csv:/elsewhere.csv", "created": "x",
            "compression": {"codec": "zstd", "level": 3}}
    (backup / "journal.jsonl").write_text(json.dumps(head) + "\n")
    with pytest.raises(BackupError, match=r"unfinished backup of 'csv:/elsewhere\.csv'"):
        tdetl.run(f"csv:{tmp_path}/m0.csv", f"local:{backup}", parser=parser)
    with pytest.raises(BackupError, match="unfinished backup"):
        tdetl.run(f"local:{backup}", f"duckdb:{tmp_path / 'x.duckdb'}")


def test_jobs_restore_selection_and_lz4(tmp_path: Path) -> None:
    parser = _source(tmp_path, 40_000, files=4)
    backup = tmp_path / "bk"
    s = tdetl.run(f"csv:{tmp_path}/m*.csv", f"local:{backup}?compression=lz4&file_rows=5000",
                  parser=parser, jobs=2, batch_rows=5000)
    assert s.rows_written == 40_000
    assert _restored(tmp_path, backup).equals(_expected(40_000))
    part = tmp_path / "part.duckdb"
    tdetl.run(f"local:{backup}?tables=d3,meters.d7", f"duckdb:{part}", jobs=2)
    got = duckdb.connect(str(part)).sql("SELECT tbname, count(*) FROM meters GROUP BY 1 ORDER BY 1").fetchall()
    assert got == [("d3", 2000), ("d7", 2000)]
    info = tdetl.inspect(f"local:{backup}")
    assert info["rows"] == 40_000 and len(info["tables"]) == 20


def test_inspect_gives_each_table_its_own_time_range(tmp_path: Path) -> None:
    df = meters(40, tables=2).with_columns(
        pl.when(pl.col("tbname") == "d1").then(pl.col("ts") + 86_400_000).otherwise(pl.col("ts")).alias("ts"))
    df.write_csv(tmp_path / "m.csv")
    tdetl.run(f"csv:{tmp_path / 'm.csv'}", f"local:{tmp_path / 'b'}", parser=json.dumps(PARSER))
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert len(manifest["files"]) == 1 and len(manifest["files"][0]["tables"]) == 2  # both tables in one file
    got = {t["name"]: t["time_range"] for t in tdetl.inspect(f"local:{tmp_path / 'b'}")["tables"]}
    for name, rows in df.group_by("tbname"):
        lo, hi = rows["ts"].min(), rows["ts"].max()
        want = [pl.Series([lo, hi]).cast(pl.Datetime("ms")).dt.strftime("%Y-%m-%dT%H:%M:%S").to_list()[i] + "Z"
                for i in range(2)]
        assert got[name[0]] == want, (name, got)


def test_two_backups_into_one_directory_at_once_the_second_is_refused(tmp_path: Path) -> None:
    parser = _source(tmp_path, 200_000)
    backup = tmp_path / "bk"
    cmd = [sys.executable, "-m", "tdetl", "run", "-f", f"csv:{tmp_path}/m0.csv", "-p", parser,
           "-t", f"local:{backup}?file_rows=2000", "--batch-rows", "2000", "-q"]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (backup / "journal.jsonl").exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    first.communicate(timeout=120)
    assert first.returncode == 0
    assert second.returncode == 1, second.stderr
    assert second.stderr.count("\n") == 1 and "being written by another tdetl run" in second.stderr
    assert _restored(tmp_path, backup).equals(_expected(200_000))
    assert not (backup / ".lock").exists()


@pytest.mark.parametrize("damage", ["fewer rows", "swapped names", "absolute path", "outside", "symlink out"])
def test_an_edited_manifest_is_refused_and_nothing_is_written(tmp_path: Path, damage: str) -> None:
    parser = _source(tmp_path, 30_000)
    backup = tmp_path / "bk"
    tdetl.run(f"csv:{tmp_path}/m0.csv", f"local:{backup}?file_rows=10000", parser=parser)
    manifest = json.loads((backup / "manifest.json").read_text())
    entry = manifest["files"][0]
    if damage == "fewer rows":
        entry["tables"][0][2] -= 100
        for r in entry["tables"][1:]:
            r[1] -= 100
        entry["rows"] -= 100
    elif damage == "swapped names":
        entry["tables"][0][0], entry["tables"][1][0] = entry["tables"][1][0], entry["tables"][0][0]
    elif damage == "absolute path":
        entry["path"] = str(backup / entry["path"])
    elif damage == "outside":
        (tmp_path / "elsewhere.arrow").write_bytes((backup / entry["path"]).read_bytes())
        entry["path"] = "data/../../elsewhere.arrow"
    else:
        (backup / "data" / "link").symlink_to(tmp_path)
        entry["path"] = "data/link/m0.csv"
    (backup / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "out.duckdb"
    res = run_cli("run", "-f", f"local:{backup}", "-t", f"duckdb:{out}")
    assert res.returncode == 1, res.stderr
    assert res.stderr.count("\n") == 1, res.stderr
    assert ("manifest was changed" in res.stderr if damage in ("fewer rows", "swapped names")
            else "under the backup's data/" in res.stderr or "outside the backup" in res.stderr), res.stderr
    if out.exists():
        assert duckdb.connect(str(out)).sql("SELECT table_name FROM information_schema.tables").fetchall() == []


def test_a_write_cut_short_leaves_no_temp_file_that_blocks_the_rerun(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from tdetl.drivers.local import backup as fmt

    parser = _source(tmp_path, 2_000)
    backup = tmp_path / "bk"
    real = fmt.os.fsync
    monkeypatch.setattr(fmt.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    with pytest.raises(OSError, match="No space left"):
        tdetl.run(f"csv:{tmp_path}/m0.csv", f"local:{backup}", parser=parser)
    monkeypatch.setattr(fmt.os, "fsync", real)
    assert not backup.exists() or [p.name for p in backup.iterdir()] == []
    # a temp file left by a process that died outright (kill -9 in the write) does not block either
    backup.mkdir(exist_ok=True)
    (backup / ".journal.jsonl.tmp-99999").write_text("{")
    tdetl.run(f"csv:{tmp_path}/m0.csv", f"local:{backup}", parser=parser)
    assert _restored(tmp_path, backup).equals(_expected(2_000))


_MANIFEST_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=20)
    | st.sampled_from(["/etc/passwd", "../x.arrow", "data/../../x", "d0", "meters"]),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3), max_leaves=8)


@pytest.fixture(scope="module")
def small_backup(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("bk")
    parser = _source(tmp, 3_000)
    tdetl.run(f"csv:{tmp}/m0.csv", f"local:{tmp / 'bk'}?file_rows=1000", parser=parser, batch_rows=1000)
    return tmp / "bk"


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_property_an_edited_manifest_restores_exactly_or_is_refused(small_backup: Path, tmp_path: Path,
                                                                     data: st.DataObject) -> None:
    """Any edit of any value in manifest.json: the restore lands every row exactly, or stops with one
    line before anything is written; never other rows, never a crash."""
    original = json.loads((small_backup / "manifest.json").read_text())
    paths = [p for p in json_paths(original) if p[0] in ("files", "stables", "tables", "databases")]
    doc = json.loads(json.dumps(original))
    path = data.draw(st.sampled_from(paths))
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = data.draw(_MANIFEST_VALUES)
    copy = tmp_path / f"bk-{uuid.uuid4().hex[:8]}"
    shutil.copytree(small_backup, copy)
    (copy / "manifest.json").write_text(json.dumps(doc))
    out = copy.with_suffix(".duckdb")
    try:
        tdetl.run(f"local:{copy}", f"duckdb:{out}")
    except TdetlError as e:
        assert "\n" not in str(e)
        if out.exists():
            assert duckdb.connect(str(out)).sql("SELECT table_name FROM information_schema.tables").fetchall() == []
        return
    got = pl.from_arrow(duckdb.connect(str(out)).sql("SELECT * FROM meters").to_arrow_table()).sort("tbname", "ts")
    assert got.select("tbname", "ts", "current", "voltage", "phase").equals(
        _expected(3_000).select("tbname", "ts", "current", "voltage", "phase"))

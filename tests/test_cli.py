"""The real command line: exit codes, one-line errors, summaries, transforms, the quickstart."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest

import tdetl
from tdetl.errors import ConfigError

from .conftest import ROOT, SAMPLES, run_cli


def test_quickstart_commands_from_readme(tmp_path: Path) -> None:
    """The README's first command (after install) works as written, from a fresh directory, and
    again (a user runs it twice)."""
    import shutil

    readme = (ROOT / "README.md").read_text()
    block = readme.split("```sh", 1)[1].split("```", 1)[0]
    joined = " ".join(ln.strip().rstrip("\\") for ln in block.splitlines())
    steps = [part.strip() for part in joined.split("&&") if part.strip().startswith(("tdetl ", "rm -rf "))]
    assert sum(s.startswith("tdetl ") for s in steps) >= 2, "the README quickstart runs tdetl at least twice"
    for _ in range(2):
        for line in steps:
            args = shlex.split(line.replace("formats/", f"{ROOT}/formats/"))[1:]
            if line.startswith("rm -rf "):
                for a in args[1:]:
                    shutil.rmtree(tmp_path / a, ignore_errors=True)
                continue
            res = run_cli(*args, cwd=tmp_path)
            assert res.returncode == 0, (line, res.stderr)
    con = duckdb.connect(str(tmp_path / "meters.duckdb"))
    assert con.sql("SELECT count(*), count(DISTINCT tbname) FROM meters").fetchall() == [(1000, 10)]


def test_run_summary_and_inspect(tmp_path: Path) -> None:
    res = run_cli("run", "-f", f"csv:{SAMPLES / 'meters.csv'}", "-p", f"@{SAMPLES / 'meters.parser.json'}",
                  "-t", f"local:{tmp_path / 'bk'}")
    assert res.returncode == 0, res.stderr
    assert "read 1,000 rows, wrote 1,000 rows" in res.stderr and "to 10 tables" in res.stderr
    res = run_cli("inspect", f"local:{tmp_path / 'bk'}", "--json")
    info = json.loads(res.stdout)
    assert info["rows"] == 1000 and info["stables"][0]["name"] == "meters"
    assert {t["name"] for t in info["tables"]} == {f"d{i}" for i in range(10)}
    quiet = run_cli("run", "-qq", "--from", f"local:{tmp_path / 'bk'}", "--to", f"parquet:{tmp_path / 'pq'}")
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_errors_are_one_line_with_nonzero_exit_and_no_password(tmp_path: Path) -> None:
    cases = [
        (["run", "-f", "ftp://user:s3cret@host:21/x", "-t", f"local:{tmp_path}/a"], "unknown source driver"),
        (["run", "-f", f"csv:{SAMPLES / 'meters.csv'}", "-t", "taos+tcp://root:s3cret@h:6030/db"],
         "driver 'taos' does not speak 'tcp'"),
        (["run", "-f", f"csv:{SAMPLES / 'meters.csv'}", "-t", "opentsdb+http://root:s3cret@h:4242/t"],
         "unknown target driver 'opentsdb'"),
        (["run", "-f", f"csv:{SAMPLES / 'meters.csv'}", "-t", "kafka://root:s3cret@h:9092/t"],
         "name where to publish: topic=<template>"),
        (["run", "-f", f"csv:{SAMPLES / 'meters.csv'}", "-p", "{bad", "-t", f"local:{tmp_path}/b"],
         "--parser: not valid JSON"),
        (["run", "-f", f"local:{tmp_path}/none", "-t", f"duckdb:{tmp_path}/x.duckdb"], "not a tdetl backup"),
        (["run", "-f", f"csv:{SAMPLES / 'meters.csv'}", "-t", f"local:{tmp_path}/c", "--on-error", "skip"],
         "--on-error 'skip'"),
        (["run", "-f", f"csv:{SAMPLES / 'meters.csv'}", "-t", f"local:{tmp_path}/d", "-T", "shout:x"],
         "unknown transform 'shout'"),
    ]
    for args, expect in cases:
        res = run_cli(*args)
        assert res.returncode == 1, (args, res.stderr)
        assert res.stderr.startswith("tdetl: error: ") and res.stderr.count("\n") == 1, res.stderr
        assert expect in res.stderr and "s3cret" not in res.stderr
    usage = run_cli("run", "-f", "csv:x.csv")
    assert usage.returncode == 2 and "-t/--to" in usage.stderr and usage.stderr.count("\n") == 1


def test_mistakes_get_a_hint_in_one_line(tmp_path: Path) -> None:
    """-j 0 and --batch-rows 0 are refused; a parser file given without @; the nearest parameter."""
    csv = f"csv:{SAMPLES / 'meters.csv'}"
    for flag in ("-j", "--batch-rows"):
        res = run_cli("run", "-f", csv, "-t", f"local:{tmp_path}/a", flag, "0")
        assert res.returncode == 2 and res.stderr.count("\n") == 1 and "0 is not >= 1" in res.stderr, res.stderr
    res = run_cli("run", "-f", csv, "-t", f"local:{tmp_path}/b", "-p", str(SAMPLES / "meters.parser.json"))
    assert res.returncode == 1 and f"give @{SAMPLES / 'meters.parser.json'} to read it" in res.stderr
    res = run_cli("run", "-f", f"local:{tmp_path}?stable=x", "-t", f"local:{tmp_path}/c")
    assert res.returncode == 1 and "unknown parameter 'stable' for local (did you mean 'stables'?" in res.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_transforms_rename_and_add_tag(tmp_path: Path) -> None:
    res = run_cli("run", "-f", f"csv:{SAMPLES / 'meters.csv'}", "-p", f"@{SAMPLES / 'meters.parser.json'}",
                  "-t", f"duckdb:{tmp_path / 'o.duckdb'}", "-T", "rename-child-table:prefix:old_",
                  "-T", "rename-child-table:replace_with_regex:^old_d(?<n>\\d+)::dev_$n",
                  "-T", "rename-super-table:suffix:_v2", "-T", "add-tag:site=north", "-q")
    assert res.returncode == 0, res.stderr
    con = duckdb.connect(str(tmp_path / "o.duckdb"))
    rows = con.sql("SELECT DISTINCT tbname, site FROM meters_v2 ORDER BY 1").fetchall()
    assert rows[:2] == [("dev_0", "north"), ("dev_1", "north")] and len(rows) == 10


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("tdetl")
    res = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.startswith("tdetl ")


def test_a_missing_extra_is_named_before_anything_is_written(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = ("import sys; sys.modules['kafka'] = None; from tdetl.cli import main;"
            f" sys.exit(main(['run', '-f', 'kafka://127.0.0.1:9/?topics=t', '-t', 'local:{tmp_path / 'bk'}']))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and res.stderr.count("\n") == 1, res.stderr
    assert "pip install 'tdetl[kafka]'" in res.stderr and "kafka is missing" in res.stderr
    assert not (tmp_path / "bk").exists()


def test_a_choice_the_target_does_not_decide_is_refused(tmp_path: Path) -> None:
    """table-missing for a DuckDB file, unreachable=cache for a backup: they would silently do nothing."""
    src = tmp_path / "m.csv"
    src.write_text("ts,v\n1700000000000,1\n")
    for on, target in ((["table-missing=error"], f"duckdb:{tmp_path / 'x.duckdb'}"),
                       (["unreachable=cache"], f"local:{tmp_path / 'bk'}"),
                       (["cache-max-bytes=1000"], f"csv:{tmp_path / 'out.csv'}")):
        key = on[0].split("=")[0]
        with pytest.raises(ConfigError, match=f"--on {key}: the .* target does not decide {key}"):
            tdetl.run(f"csv:{src}", target, on=on)
    assert not (tmp_path / "bk").exists() and not (tmp_path / "x.duckdb").exists()


def test_ctrl_c_says_what_was_done_and_how_to_resume(tmp_path: Path, mosquitto: Any) -> None:
    """A subscription (MQTT) interrupted: the rows written so far and how a rerun continues; -v logs
    carry a timestamp."""
    import os
    import signal
    import time

    from .test_mqtt import PARSER as MQTT_PARSER
    from .test_mqtt import _doc, _publish

    src = f"mqtt://127.0.0.1:{mosquitto.port}?topics=int/%23::1&client_id=int{os.getpid()}"
    proc = subprocess.Popen([sys.executable, "-m", "tdetl", "run", "-f", src, "-t", f"local:{tmp_path / 'bk'}",
                             "-p", json.dumps(MQTT_PARSER), "-v"], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        time.sleep(3)  # subscribed
        _publish(mosquitto, [("int/a", json.dumps(_doc(i)).encode(), 1) for i in range(100)])
        time.sleep(3)  # written and flushed (idle flush after 1 s)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert last == "tdetl: interrupted after writing 100 rows; run the same command again: the backup resumes" \
                   " from its journal", err
    assert any(ln[:4].isdigit() and "T" in ln[:11] and " INFO " in ln for ln in err.splitlines()), err


def test_resume_hints_follow_the_target_and_source() -> None:
    from tdetl.request import RunRequest

    assert "--state s.json" in RunRequest("csv:a.csv", "taos://h/db", state="s.json").resume_hint()
    assert "starts over" in RunRequest("csv:a.csv", "taos://h/db").resume_hint()
    assert "committed" in RunRequest("kafka://h:9092?topic=t", "taos://h/db").resume_hint()
    assert "nothing was kept" in RunRequest("csv:a.csv", "duckdb:o.db").resume_hint()

"""The documented formats match what tdetl writes and reads."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pyarrow as pa

import tdetl

from .conftest import ROOT, SAMPLES
from .test_roundtrip import write_csv


def test_manifest_matches_schema_and_files_describe_themselves(tmp_path: Path) -> None:
    schema = json.loads((ROOT / "formats" / "backup.schema.json").read_text())
    parser = write_csv(tmp_path / "a.csv", "us")
    tdetl.run(f"csv:{tmp_path / 'a.csv'}", f"local:{tmp_path / 'bk'}", parser=parser)
    manifest = json.loads((tmp_path / "bk" / "manifest.json").read_text())
    jsonschema.validate(manifest, schema)
    assert manifest["source"] == f"csv:{tmp_path / 'a.csv'}"
    for entry in manifest["files"]:
        with pa.ipc.open_file(tmp_path / "bk" / entry["path"]) as reader:
            meta = json.loads(reader.schema.metadata[b"tdetl.tables"])
            assert meta == entry["tables"]
            assert sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches)) == entry["rows"]
    bad = dict(manifest, files=[dict(manifest["files"][0], sha256="xyz")])
    try:
        jsonschema.validate(bad, schema)
        raise AssertionError("a bad sha256 passed the schema")
    except jsonschema.ValidationError:
        pass


def test_sample_parser_matches_schema() -> None:
    schema = json.loads((ROOT / "formats" / "parser.schema.json").read_text())
    jsonschema.validate(json.loads((SAMPLES / "meters.parser.json").read_text()), schema)
    seed_kafka = {"parse": {"ts": {"as": "timestamp(ms)"}, "value": {"json": ["id::int", "message::binary"]}},
                  "model": [{"name": "t_{t}", "using": "kafka_data", "tags": ["t"], "columns": ["ts", "id"]}]}
    jsonschema.validate(seed_kafka, schema)
    with_bad_key = {"model": {"name": "x", "columns": ["ts"], "colums": []}}
    try:
        jsonschema.validate(with_bad_key, schema)
        raise AssertionError("an unknown model key passed the schema")
    except jsonschema.ValidationError:
        pass


def test_transform_sample_matches_schema_and_runs_as_documented() -> None:
    """The sample with every transform step and mapping rule is valid and equals the tested config."""
    from .test_transforms import PARSER

    schema = json.loads((ROOT / "formats" / "parser.schema.json").read_text())
    sample = json.loads((SAMPLES / "web.parser.json").read_text())
    jsonschema.validate(sample, schema)
    assert sample == PARSER
    for bad in ({"transform": [{"split": "loc", "separator": "."}]},  # no count
                {"transform": [{"regex": "x", "pattern": "(?<a>.)", "filter": "a"}]},
                {"model": {"name": "x", "columns": ["ts"], "mapping": {"y": {"generator": "uuid"}}}}):
        try:
            jsonschema.validate(bad, schema)
        except jsonschema.ValidationError:
            continue
        raise AssertionError(f"{bad} passed the schema")

"""TDengine's "meters" example data, generated vectorised: the quickstart sample, and the input of
tests and benchmarks at any size."""

from __future__ import annotations

import numpy as np
import polars as pl

LOCATIONS = ["California.SanFrancisco", "California.LosAngeles", "California.SanDiego",
             "California.SanJose", "California.PaloAlto", "California.Campbell",
             "California.MountainView", "California.Sunnyvale", "California.SantaClara",
             "California.Cupertino"]


def meters(rows: int, tables: int = 10, start_ms: int = 1_700_000_000_000, seed: int = 7) -> pl.DataFrame:
    """Columns tbname, ts (ms epoch), current, voltage, phase, groupid, location; ``rows`` rows
    spread round-robin over ``tables`` child tables, one row per table per second."""
    rng = np.random.default_rng(seed)
    i = np.arange(rows)
    t = i % tables
    return pl.DataFrame({
        "tbname": pl.Series(t).cast(pl.String).str.replace(r"^", "d"),
        "ts": start_ms + (i // tables) * 1000,
        "current": np.round(rng.uniform(8, 14, rows), 2).astype(np.float32),
        "voltage": rng.integers(205, 235, rows, dtype=np.int32),
        "phase": np.round(rng.uniform(0.2, 0.4, rows), 3).astype(np.float32),
        "groupid": (t % 5 + 1).astype(np.int32),
        "location": pl.Series(np.array(LOCATIONS)[t % len(LOCATIONS)]),
    })


PARSER = {
    "parse": {
        "ts": {"as": "TIMESTAMP(ms)"},
        "current": {"as": "FLOAT"},
        "voltage": {"as": "INT"},
        "phase": {"as": "FLOAT"},
        "groupid": {"as": "INT"},
        "location": {"as": "VARCHAR(24)"},
    },
    "model": {"name": "${tbname}", "using": "meters", "tags": ["groupid", "location"],
              "columns": ["ts", "current", "voltage", "phase"]},
}

"""``tdetl inspect``: what a source holds — tables, schemas, row counts, time range."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .model import Catalog
from .source import Source, TableStats, count_into


def describe(source: Source) -> dict[str, Any]:
    """Per-table rows and min/max timestamp. Sources that know these without reading data
    (a backup's manifest) say so through ``describe()``; others are read once, batch by batch."""
    known = source.inventory()
    stats: TableStats = {}
    if known is not None:
        cat, stats = known.catalog, known.stats
    else:
        cat = source.catalog()
        cat = Catalog(dict(cat.databases), dict(cat.stables), dict(cat.tables))
        for part in source.partitions():
            for b in source.read(part):
                cat.add_table(b.spec)
                lo = hi = None
                ts = b.data.column(0)
                if b.num_rows and pa.types.is_timestamp(ts.type):
                    mm = pc.min_max(ts.cast(pa.int64()))
                    lo, hi = mm["min"].as_py(), mm["max"].as_py()
                count_into(stats, (b.spec.database, b.spec.name), b.num_rows, lo, hi)
    tables = []
    for key, spec in cat.tables.items():
        st = stats.get(key, {"rows": 0, "min_ts": None, "max_ts": None})
        tables.append({**spec.to_json(), **st, "precision": spec.precision,
                       "time_range": [_iso(st["min_ts"], spec.precision), _iso(st["max_ts"], spec.precision)]})
    info = {
        "source": source.dsn.masked(),
        "databases": [{"name": d.name, "precision": d.precision} for d in cat.databases.values()],
        "stables": [st.to_json() for st in cat.stables.values()],
        "tables": tables,
        "rows": sum(t["rows"] for t in tables),
    }
    if known is not None and known.runs is not None:
        info["runs"] = known.runs
    return info


def _iso(v: int | None, precision: str) -> str | None:
    if v is None:
        return None
    return str(pa.scalar(v, pa.int64()).cast(pa.timestamp(precision)).as_py()).replace(" ", "T") + "Z"


def render(info: dict[str, Any]) -> str:
    lines = [f"source: {info['source']}"]
    for st in info["stables"]:
        cols = ", ".join(f"{c['name']} {c['type']}" for c in st["columns"])
        tags = ", ".join(f"{c['name']} {c['type']}" for c in st["tags"])
        db = f"{st['database']}." if st.get("database") else ""
        lines.append(f"super table {db}{st['name']} ({cols}) TAGS ({tags})")
    for r in info.get("runs", []):
        lines.append(f"run {r['run']}: {r.get('started')} .. {r.get('completed')}, {r.get('rows', 0):,} rows in"
                     f" {r.get('files', 0)} files")
    lines.append(f"{len(info['tables'])} tables, {info['rows']:,} rows")
    for t in info["tables"]:
        where = f" of {t['stable']}" if t.get("stable") else ""
        tags = f" tags {t['tags']}" if t.get("tags") else ""
        rng = t["time_range"]
        lines.append(f"  {t['name']}{where}: {t['rows']:,} rows, {rng[0]} .. {rng[1]}{tags}")
    return "\n".join(lines)

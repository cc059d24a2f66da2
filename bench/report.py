"""The documentation's benchmark page, generated from the figures the benchmark scripts write with
``--json`` (kept in bench/results/): a bar chart per comparison, drawn as inline SVG, and the ratios
each goal is judged by. Regenerate the figures by running the scripts again; the page follows."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
NOTES = RESULTS.parent / "README.md"  # every benchmark, and figures measured by hand
_OURS, _THEIRS = "#2e7d32", "#90a4ae"


def bars(title: str, items: list[tuple[str, float]], unit: str) -> str:
    """Horizontal bars (tdetl's own in green), each labelled with its value."""
    top = max((v for _, v in items), default=1.0) or 1.0
    height = 34 + 24 * len(items)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="760" height="{height}" role="img"'
           f' aria-label="{html.escape(title)}" style="font-family: sans-serif">',
           f'<text x="0" y="16" font-size="14" font-weight="bold">{html.escape(title)}</text>']
    for i, (label, value) in enumerate(items):
        y = 28 + i * 24
        width = 380 * value / top
        colour = _OURS if label.startswith("tdetl") else _THEIRS
        out += [f'<text x="0" y="{y + 14}" font-size="12">{html.escape(label)}</text>',
                f'<rect x="290" y="{y}" width="{width:.1f}" height="18" fill="{colour}"/>',
                f'<text x="{294 + width:.1f}" y="{y + 14}" font-size="12">{value:,.2f} {unit}</text>']
    return "\n".join([*out, "</svg>"])


def _load(name: str) -> Any:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _throughput(figures: list[dict[str, Any]]) -> list[str]:
    rates = [(f["name"], f["rate"] / 1e6) for f in figures if f.get("rate")]
    rates.sort(key=lambda x: -x[1])
    return ["## Ingest, sync, backup and restore", "",
            "`python -m bench.throughput --runs 2 --json bench/results/throughput.json`: whole processes on the"
            " bundled server, 100 child tables x 100,000 rows, best of 2; tdetl against taosBenchmark's insert modes,"
            " taosdump and the in-process ceilings of `bench/ceilings.py`.", "",
            bars("rows per second (millions), whole processes", rates, "M/s"), ""]


def _sql(doc: dict[str, Any]) -> list[str]:
    out = ["## SQL databases into TDengine", "",
           f"`python -m bench.sql_sources --rows {doc['rows']} --json bench/results/sql_sources.json`: whole processes,"
           " tdetl's run against the reader alone into Arrow (the source's ceiling) and the driver a Python user"
           " would use with taospy `stmt2`.", ""]
    for r in doc["results"]:
        items = [("tdetl -> taos://", r["tdetl"]), ("reader alone (no target)", r["reader_alone"])]
        if r.get("python_way"):
            items.append(("driver + taospy stmt2", r["python_way"]))
        out += [bars(f"{r['source']}: seconds for {doc['rows']:,} rows (shorter is better)", items, "s"), "",
                f"{r['source']}: tdetl takes {r['tdetl'] / r['reader_alone']:.2f}x the reader's time"
                + (f", {r['python_way'] / r['tdetl']:.1f}x faster than driver + taospy stmt2." if r.get("python_way")
                   else "."), ""]
    return out


def _frames(doc: dict[str, Any]) -> list[str]:
    s = doc["seconds"]
    reads = [(k, v) for k, v in s.items() if "write" not in k and "stmt2" not in k and "restore" not in k]
    writes = [(k, v) for k, v in s.items() if k not in dict(reads)]
    return ["## DataFrames", "",
            f"`python -m bench.dataframes --json bench/results/dataframes.json`: {doc['rows']:,} meters rows,"
            " in-process.", "",
            bars("reading SELECT * FROM meters into a DataFrame: seconds (shorter is better)", reads, "s"), "",
            bars("writing the same rows from a pandas DataFrame: seconds (shorter is better)", writes, "s"), "",
            f"`tdetl.query` into pandas: {s['taospy fetchall + pandas'] / s['tdetl.query -> pandas']:.1f}x taospy"
            f" fetchall + pandas; into Arrow: {s['raw fetch (ceiling)'] / s['tdetl.query -> pyarrow']:.2f}x the raw"
            f" fetch. `tdetl.write`: {s['taospy stmt2 (pandas)'] / s['tdetl.write (pandas)']:.1f}x taospy stmt2,"
            f" {s['tdetl restore (local: -> taos://)'] / s['tdetl.write (pandas)']:.2f}x tdetl's restore.", ""]


# What each path of bench/throughput.py is held against: (baseline, how). "rate" divides rates, "time"
# divides the baseline's seconds by ours (how many times faster), "insert" uses the rate taosBenchmark
# reports for its own insert phase.
AGAINST: dict[str, list[tuple[str, str]]] = {
    "taosBenchmark -I taosc": [("taosBenchmark -I stmt2", "rate")],
    "tdetl local: -> taos://": [("taosBenchmark -I stmt2", "insert"), ("taosdump -i", "time")],
    "tdetl local: -> taos+ws://": [("taosBenchmark -I stmt2", "insert")],
    "tdetl taos:// -> taos://": [("ceiling: raw copy", "rate"), ("taosBenchmark -I stmt2", "insert")],
    "tdetl taos:// -> taos+ws://": [("ceiling: raw copy", "rate")],
    "tdetl taos:// -> local:": [("taosdump -o", "time"), ("ceiling: raw read", "rate")],
    "tdetl tmq:// -> taos://": [("tdetl taos:// -> taos://", "rate")],
    "tdetl tmq+ws:// -> taos+ws://": [("tdetl taos:// -> taos+ws://", "rate")],
    "tdetl tmq:// -> taos:// rerun, +1% rows": [("tdetl taos:// -> taos:// rerun, +1% rows", "time")],
    "tdetl tmq:// -> local:": [("taosdump -o", "time"), ("tdetl taos:// -> local:", "rate")],
}


def _ratio(ours: dict[str, Any], base: dict[str, Any], how: str) -> str:
    if how == "time":
        return f"{base['best'] / ours['best']:.2f}x as fast as {base['name']}"
    if how == "insert":
        return f"{ours['rate'] / base['own_rate']:.2f}x {base['name']}'s own insert-phase rate"
    return f"{ours['rate'] / base['rate']:.2f}x {base['name']}'s rows/s"


def throughput_table(names: list[str] | None = None) -> str:
    """bench/throughput.py's figures (all, or the paths named) as a Markdown table, each with the
    ratios it is judged by, all from the same run: the guides quote this, never copied numbers."""
    doc = _load("throughput")
    if not doc:
        return "(`bench/results/throughput.json` is not there: run `python -m bench.throughput --json ...`.)"
    found = {f["name"]: f for f in doc}
    missing = [n for n in names or () if n not in found]
    if missing:
        raise KeyError(f"bench/results/throughput.json has no figure {missing}")
    out = ["| path | seconds | rows/s | against the same run |", "|---|---|---|---|"]
    for f in [found[n] for n in names] if names else doc:
        said = [_ratio(f, found[b], how) for b, how in AGAINST.get(f["name"], []) if b in found]
        if f.get("note"):
            said.append(f["note"])
        rate = f"{f['rate'] / 1e6:.2f} M" if f.get("rate") else ""
        out.append(f"| {f['name'].replace('|', '/')} | {f['best']:.2f} | {rate} | {'; '.join(said)} |")
    return "\n".join(out)


MARKER = re.compile(r"<!-- throughput(?:: (.*?))? -->")


def with_figures(markdown: str) -> str:
    """``<!-- throughput -->`` (every path) or ``<!-- throughput: a; b -->`` becomes the table."""
    return MARKER.sub(lambda m: throughput_table([n.strip() for n in m.group(1).split(";")] if m.group(1) else None),
                      markdown)


def page() -> str:
    out = ["# Benchmarks", "",
           "Generated from the figures in `bench/results/` at every build of this site. All were measured on one"
           " 2-core VM shared by TDengine 3.3.7.5 (taosd, taosAdapter), the other servers and the client; each"
           " comparison's figures come from one run of its script.", ""]
    for name, render in (("throughput", _throughput), ("sql_sources", _sql), ("dataframes", _frames)):
        doc = _load(name)
        out += render(doc) if doc else [f"(`bench/results/{name}.json` is not there: run its script with --json.)", ""]
    return "\n".join(out) + with_figures(NOTES.read_text().split("\n", 1)[1])  # its title is this page's

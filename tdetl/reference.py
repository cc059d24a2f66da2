"""The documentation site's reference pages, generated from the code at build time so they cannot
drift from it (docs/hooks.py hands them to MkDocs): every driver's parameters from its spec, the
``--on`` situations and settings from :mod:`tdetl.quality`, the command line from its argument parser,
and the service's API from its OpenAPI document. Each function returns one page's Markdown."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from .cli import _parser
from .drivers import SINKS, SOURCES, _default, driver_class
from .errors import DsnError
from .quality import SETTINGS, SITUATIONS
from .serve.app import create_app


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


# Where the site's guides walk through each driver (the page links them; a test keeps every driver listed)
_FILES = "backup-restore.md#files-csv-parquet-orc-duckdb"
_SQL = "other-sources.md#sql-databases"
GUIDES = {
    "csv": _FILES, "duckdb": _FILES, "orc": _FILES, "parquet": _FILES, "local": "backup-restore.md",
    "taos": "migrate.md#a-query-sync", "tmq": "migrate.md#replication-with-tmq", "kafka": "ingest.md#kafka",
    "mqtt": "ingest.md#one-message-all-the-way", "sparkplugb": "ingest.md#brokers-as-sources",
    "influxdb": "other-sources.md#influxdb", "opentsdb": "other-sources.md#opentsdb",
    "opcua": "other-sources.md#opc-ua", "opc": "other-sources.md#opc-ua",
    "postgres": _SQL, "postgresql": _SQL, "mysql": _SQL,
    "taosdump": "other-sources.md#taosdump-archives", "memory": "dataframes.md",
}


def drivers_page() -> str:
    out = ["# Drivers", "",
           "Every driver with its parameters, generated from the spec each driver declares"
           " (`tdetl drivers <name>` prints the same). A DSN is"
           " `<driver>[+<protocol>]://[user:pass@]host:port/object?parameter=value`"
           " ([how values are written](../getting-started.md#dsns)).", ""]
    seen: dict[tuple[type, str], str] = {}
    for name in sorted(set(SOURCES) | set(SINKS)):
        for role in ("source", "target"):
            try:
                cls = driver_class(name, role)
            except DsnError as e:
                out += [f"## `{name}` as a {role}", "", f"Not available in this build: {e}", ""]
                continue
            if cls is None:
                continue
            out += [f"## `{name}` as a {role}", ""]
            if name in GUIDES:
                out += [f"Walked through in [a guide](../guides/{GUIDES[name]}).", ""]
            if (cls, role) in seen:
                out += [f"The same driver as [`{seen[cls, role]}`](#{seen[cls, role]}-as-a-{role}).", ""]
                continue
            seen[cls, role] = name
            protocols = ", ".join(f"`{name}+{p}://`" if p else f"`{name}:`" for p in cls.protocols)
            out += [f"Schemes: {protocols}. {cls.capabilities.described().capitalize()}.", ""]
            if not list(cls.spec):
                out += ["No parameters.", ""]
                continue
            out += ["| parameter | form | default | meaning |", "|---|---|---|---|"]
            for p in cls.spec:
                names = "".join(f", `{a}`" for a in p.aliases)
                out.append(f"| `{p.name}`{names} | {_cell(p.form)} | {_cell(_default(p.default)) or '—'} |"
                           f" {_cell(p.help)}{' (secret: never shown or kept)' if p.secret else ''} |")
            out.append("")
    return "\n".join(out)


def situations_page() -> str:
    out = ["# Data quality: `--on` situations", "",
           "Generated from `tdetl/quality.py` (`tdetl situations` prints the same). `--on <situation>=<choice>`"
           " (repeatable), the parser config's `\"on\": {...}` and the Python API's `on={...}` take these keys;"
           " the first choice is the default.", "",
           "| situation | choices | when |", "|---|---|---|"]
    for s in SITUATIONS.values():
        out.append(f"| `{s.key}` | {', '.join(f'`{c}`' for c in s.choices)} | {_cell(s.help)} |")
    out += ["", "## Settings", "", "| setting | default | meaning |", "|---|---|---|"]
    for st in SETTINGS.values():
        out.append(f"| `{st.key}` | `{_cell(st.default)}` | {_cell(st.help)} |")
    return "\n".join(out) + "\n"


def cli_page() -> str:
    parser = _parser()
    out = ["# Command line", "", "Generated from tdetl's argument parser (`tdetl <command> --help`).", "",
           "```text", parser.format_help().rstrip(), "```", ""]
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subs.choices.items():
        out += [f"## `tdetl {name}`", "", "```text", sub.format_help().rstrip(), "```", ""]
    return "\n".join(out)


def service_api_page() -> str:
    with tempfile.TemporaryDirectory() as d:
        spec = create_app(Path(d), "x" * 32).openapi()
    out = ["# Service API (`tdetl serve`)", "",
           f"Generated from the service's OpenAPI document ({spec['info']['title']} {spec['info']['version']};"
           " the running service serves it at `/openapi.json`). Requests carry"
           " `Authorization: Bearer <token>` (the [service guide](../guides/serve.md)).", "",
           "| method | path | what |", "|---|---|---|"]
    for path, ops in sorted(spec["paths"].items()):
        for method, op in ops.items():
            said = (op.get("description") or "").split("\n\n")[0] or op.get("summary") or ""
            out.append(f"| `{method.upper()}` | `{path}` | {_cell(said)} |")
    return "\n".join(out) + "\n"


PAGES = {"reference/drivers.md": drivers_page, "reference/situations.md": situations_page,
         "reference/cli.md": cli_page, "reference/service-api.md": service_api_page}

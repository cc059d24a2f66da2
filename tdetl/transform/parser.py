"""The ``--parser`` config: load the seed's forms, compile casts and table models to Polars once,
run them per batch.

Forms accepted (see formats/parser.md):
- CSV/Kafka: ``{"parse": {"<field>": {"as": "<type>", "alias": "<name>"}}, "model": ...}``
- MQTT: ``{"parse": {"payload": {"json": [{"name": ..., "alias": ..., "cast": ...}]}}, "model": ...}``
``model`` is one object or a list: ``name`` template (``d{id}``, ``${tbname}``), ``using`` super
table, ``tags`` and ``columns`` (aliases; the first column is the TIMESTAMP).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl

from ..dsn import user_path
from ..errors import ConfigError, shown
from ..model import Column, SuperTable, TableBatch, TableSpec, conform
from ..polars_types import sized
from ..quality import ILLEGAL_NAME, NAME_MAX, Rejects, Strategies, truncate_chars
from ..types import TDType, parse_type
from .casts import ROW, Field, FrameCaster, Locate
from .expr import NOW
from .rules import Mapping, Step, StepRunner, compile_mapping, load_mapping, load_steps, with_now

_TEMPLATE = re.compile(r"\$?\{([^{}]*)\}")


@dataclass(frozen=True)
class Model:
    name: str  # child-table name template
    using: str | None
    tags: tuple[str, ...]
    columns: tuple[str, ...]
    mapping: tuple[Mapping, ...] = ()

    def template_fields(self) -> list[str]:
        return _TEMPLATE.findall(self.name)


@dataclass(frozen=True)
class ParserConfig:
    fields: tuple[Field, ...]
    models: tuple[Model, ...]
    form: str  # "fields" (CSV/Kafka) or "payload" (MQTT JSON)
    json_fields: list[tuple[str, list[Field]]] = field(default_factory=list)  # {"json": ["id::int"]}
    steps: tuple[Step, ...] = ()  # "transform": regex, split, convert, filter
    on: Strategies = field(default_factory=Strategies)  # "on": {"<situation>": "<choice>"}, as --on


def load_parser(text: str) -> ParserConfig:
    """Parse ``--parser`` text: inline JSON or ``@path``. Errors name the rule and field."""
    where = "--parser"
    if text.startswith("@"):
        path = user_path(text[1:])
        where = f"--parser {text[1:]}"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"{where}: cannot read: {e.strerror}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        hint = ""
        if not text.startswith("@") and not text.lstrip().startswith(("{", "[")) and Path(text).expanduser().is_file():
            hint = f" ({shown(text, 100)} is a file: give @{text[:100]} to read it)"
        raise ConfigError(f"{where}: not valid JSON: {e.msg} at line {e.lineno} column {e.colno}{hint}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: must be a JSON object with 'parse' and/or 'model'")
    unknown = set(doc) - {"parse", "transform", "model", "global", "on"}
    if unknown:
        raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r} (expected parse, transform, model, on)")
    if not isinstance(doc.get("on", {}), dict):
        raise ConfigError(f"{where}: 'on' must be an object like {{\"ts-null\": \"drop\"}}")
    on = Strategies.parse(doc.get("on", {}), f"{where}: on")
    fields, form, json_fields = _load_parse(doc.get("parse", {}), where)
    steps = load_steps(doc.get("transform"), where)
    raw_models = doc.get("model", [])
    one = isinstance(raw_models, dict)  # errors say "model", not "model[0]", of a model given as one object
    raw_models = [raw_models] if one else raw_models
    if not isinstance(raw_models, list):
        raise ConfigError(f"{where}: 'model' must be an object or a list of objects")
    models = tuple(_load_model(m, "model" if one else f"model[{i}]", where) for i, m in enumerate(raw_models))
    known = {f.alias for f in fields} | {f.alias for _, inner in json_fields for f in inner}
    known |= {out for st in steps for out in st.outputs()}
    if form == "payload":
        for m in models:
            for name in (*m.tags, *m.columns, *m.template_fields()):
                if name not in known | {r.target for r in m.mapping}:
                    raise ConfigError(f"{where}: model {m.using or m.name!r} names {name!r},"
                                      f" which no parse, transform or mapping rule produces")
    return ParserConfig(fields, models, form, json_fields, steps, on)


def _load_parse(parse: Any, where: str) -> tuple[tuple[Field, ...], str, list[tuple[str, list[Field]]]]:
    if not isinstance(parse, dict):
        raise ConfigError(f"{where}: 'parse' must be an object")
    if "payload" in parse:
        items = (parse["payload"] or {}).get("json") if isinstance(parse["payload"], dict) else None
        if not isinstance(items, list):
            raise ConfigError(f"{where}: parse.payload must be {{\"json\": [...]}}")
        out = []
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not item.get("name"):
                raise ConfigError(f"{where}: parse.payload.json[{i}] needs a 'name'")
            name = str(item["name"])
            alias = str(item.get("alias") or name)
            cast = item.get("cast")
            out.append(Field(name, alias, parse_type(cast, f"{where}: field {name!r}") if cast else None))
        return tuple(out), "payload", []
    out = []
    json_fields: list[tuple[str, list[Field]]] = []
    for name, rule in parse.items():
        if not isinstance(rule, dict):
            raise ConfigError(f"{where}: parse.{name} must be an object like {{\"as\": \"int\"}}")
        if "json" in rule:
            json_fields.append((name, _json_rule(rule["json"], f"{where}: parse.{name}.json")))
            continue
        bad = set(rule) - {"as", "alias"}
        if bad:
            raise ConfigError(f"{where}: parse.{name}: unknown key {sorted(bad)[0]!r} (expected as, alias)")
        t = rule.get("as")
        if rule.get("alias") is not None and not isinstance(rule["alias"], str):
            raise ConfigError(f"{where}: parse.{name}.alias must be a field name, not {shown(rule['alias'])}")
        out.append(Field(name, str(rule.get("alias") or name),
                         parse_type(t, f"{where}: field {name!r}") if t else None))
    aliases = [f.alias for f in out]
    dup = {a for a in aliases if aliases.count(a) > 1}
    if dup:
        raise ConfigError(f"{where}: alias {sorted(dup)[0]!r} is given to more than one field")
    return tuple(out), "fields", json_fields


def _json_rule(items: Any, where: str) -> list[Field]:
    """``["id::int", "message::binary", "$.a.b::double"]``: keys (or JSON paths) with a type."""
    if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
        raise ConfigError(f"{where}: must be a list like [\"id::int\", \"message::binary\"]")
    out = []
    for item in items:
        name, sep, t = item.partition("::")
        if not name:
            raise ConfigError(f"{where}: {item!r} names no key")
        out.append(Field(name, name, parse_type(t, f"{where}: {item!r}") if sep else None))
    return out


def _load_model(m: Any, label: str, where: str) -> Model:
    if not isinstance(m, dict):
        raise ConfigError(f"{where}: {label} must be an object")
    bad = set(m) - {"name", "using", "tags", "columns", "mapping"}
    if bad:
        raise ConfigError(f"{where}: {label}: unknown key {sorted(bad)[0]!r}")
    name = m.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: {label} needs a 'name' template such as \"d{{id}}\"")
    for key in ("tags", "columns"):
        if key in m and not (isinstance(m[key], list) and all(isinstance(x, str) for x in m[key])):
            raise ConfigError(f"{where}: {label}.{key} must be a list of field names")
    if not m.get("columns"):
        raise ConfigError(f"{where}: {label} needs 'columns' (the first is the timestamp)")
    using = m.get("using")
    if using is not None and not (isinstance(using, str) and using and len(using.encode()) <= NAME_MAX
                                  and not re.search(ILLEGAL_NAME, using)):
        raise ConfigError(f"{where}: {label}.using must be a super table name (no '.', '`' or control"
                          f" characters, at most {NAME_MAX} bytes), not {shown(using)}")
    return Model(name, m.get("using"), tuple(m.get("tags", [])), tuple(m["columns"]),
                 load_mapping(m.get("mapping"), f"{where}: {label}"))


# ---- compiled casts (text -> typed), reused for every batch ------------------------------------

# ---- models: typed frame -> TableBatches --------------------------------------------------------

def _name_expr(template: str, fill: str | None = None) -> pl.Expr:
    """The child-table name; a null field gives a null name, or ``fill`` (name-var-null blank/replace)."""
    fields = _TEMPLATE.findall(template)
    if not fields:
        return pl.lit(template)
    cols = [pl.col(f) if fill is None else pl.col(f).cast(pl.String).fill_null(fill) for f in fields]
    if _TEMPLATE.fullmatch(template):  # the name is one field: no formatting per row
        return cols[0].cast(pl.String)
    return pl.format(_TEMPLATE.sub("{}", template.replace("{}", "")), *cols)


class TableBuilder:
    """Runs the ``transform`` steps, then per model its ``mapping`` rules, and turns the frame into
    TableBatches, one per child table per model."""

    def __init__(self, models: tuple[Model, ...], types: dict[str, TDType], database: str | None,
                 where: str, steps: tuple[Step, ...] = ()) -> None:
        self.models, self.database, self.where = models, database, where
        self._origins: dict[str, str] = {}  # table name -> the source name that first became it
        self._lock = threading.Lock()  # readers of several partitions share the builder
        self._exprs = [_name_expr(m.name) for m in models]
        self.steps = StepRunner(steps, types)
        self.types = self.steps.types
        self._maps: list[tuple[list[pl.Expr], FrameCaster | None]] = []
        self._types: list[dict[str, TDType]] = []
        for m in models:
            exprs, out, typed = compile_mapping(m.mapping, self.types)
            mtypes = {**self.types, **out}
            self._maps.append((exprs, FrameCaster(tuple(Field(n, n, t) for n, t in typed.items())) if typed else None))
            self._types.append(mtypes)
            for name in (*m.tags, *m.columns, *m.template_fields()):
                if name not in mtypes:
                    raise ConfigError(f"{where}: model {m.using or m.name!r} names field {name!r},"
                                      f" which is not in the data (fields: {', '.join(mtypes)})")
            if mtypes[m.columns[0]].name != "TIMESTAMP":
                raise ConfigError(f"{where}: model {m.using or m.name!r}: first column"
                                  f" {m.columns[0]!r} must be a TIMESTAMP, not {mtypes[m.columns[0]]}")

    def stables(self) -> list[SuperTable]:
        out = []
        for m, types in zip(self.models, self._types):
            if m.using:
                precision = types[m.columns[0]].unit or "ms"
                out.append(SuperTable(self.database, m.using,
                                      tuple(Column(c, _plain(types[c])) for c in m.columns),
                                      tuple(Column(t, _plain(types[t])) for t in m.tags), precision))
        return out

    @property
    def precision(self) -> str | None:
        """The first model's timestamp precision: a database created for normal tables, which no
        super table describes before their rows arrive, takes it."""
        for m, types in zip(self.models, self._types):
            return types[m.columns[0]].unit or "ms"
        return None

    def _names(self, df: pl.DataFrame, m: Model, expr: pl.Expr, rejects: Rejects, locate: Locate) -> pl.DataFrame:
        """The ``__tbname`` column, with name-var-null, name-illegal, name-too-long and
        name-collision applied."""
        renames = rejects.choice("name-illegal") == "replace" or rejects.choice("name-too-long").startswith("truncate")
        df = self._repaired(df.with_columns(expr.alias("__tbname")), m, rejects, locate, renames)
        return self._apart(df, rejects, locate) if renames else df  # without repairs no two names meet

    def _apart(self, df: pl.DataFrame, rejects: Rejects, locate: Locate) -> pl.DataFrame:
        """name-collision: a table name that two different source names came to in this run (checked
        per distinct pair, and remembered across batches and readers)."""
        repaired = df["__tbname"] != df["__orig"]
        choice = rejects.choice("name-collision")
        if choice == "suffix" and repaired.any():
            origins = df.filter(repaired)["__orig"].unique().to_list()
            mapped = {o: _suffixed(n, o) for o, n in df.filter(repaired).select("__orig", "__tbname").unique()
                      .iter_rows() if o in origins}
            df = df.with_columns(pl.when(repaired).then(pl.col("__orig").replace_strict(mapped, default=None))
                                 .otherwise(pl.col("__tbname")).alias("__tbname"))
            rejects.handle("name-collision", "suffix", [], [], count=int(repaired.sum()))
        clashes = []
        with self._lock:
            for name, orig in df.select("__tbname", "__orig").unique(maintain_order=True).iter_rows():
                first = self._origins.setdefault(name, orig)
                if first != orig:
                    clashes.append((name, first, orig))
        if not clashes:
            return df.drop("__orig")
        if choice == "merge":
            hit = df["__orig"].is_in([c[2] for c in clashes])
            rejects.handle("name-collision", "merge", [], [], count=int(hit.sum()))
            return df.drop("__orig")
        name, first, other = clashes[0]
        rejects.handle("name-collision", "error", [
            f"{self.where}: source names {shown(first)} and {shown(other)} both become table {shown(name)}"], [])
        return df  # not reached: error raises

    def _repaired(self, df: pl.DataFrame, m: Model, rejects: Rejects, locate: Locate, keep: bool) -> pl.DataFrame:
        """name-var-null, name-illegal and name-too-long; with ``keep``, ``__orig`` keeps each name as
        it came."""
        missing = df["__tbname"].is_null()
        if missing.any():
            choice = rejects.choice("name-var-null")
            if choice in ("blank", "replace"):
                fill = "" if choice == "blank" else rejects.arg("name-var-null")
                df = df.with_columns(pl.when(missing).then(_name_expr(m.name, fill)).otherwise(pl.col("__tbname"))
                                     .alias("__tbname"))
                rejects.handle("name-var-null", choice, [], [], count=int(missing.sum()))
            else:
                why = f"table name template {m.name!r} gives no name (a field it uses is empty)"
                reasons, records = _bad_rows(df, missing, locate, why)
                rejects.handle("name-var-null", choice, reasons, records)
                df = df.filter(~missing)
        if keep:
            df = df.with_columns(pl.col("__tbname").alias("__orig"))
        names = df["__tbname"].unique()  # checked per distinct name: a batch holds few tables
        if names.str.contains(ILLEGAL_NAME).any():
            illegal = df["__tbname"].str.contains(ILLEGAL_NAME)
            choice = rejects.choice("name-illegal")
            if choice == "replace":
                df = df.with_columns(pl.col("__tbname").str.replace_all(ILLEGAL_NAME, rejects.arg("name-illegal"),
                                                                        literal=False))
                rejects.handle("name-illegal", choice, [], [], count=int(illegal.sum()))
            else:
                why = "table name has a character TDengine refuses ('.', '`' or a control character)"
                reasons, records = _bad_rows(df.with_columns(pl.col("__tbname").alias("table")), illegal, locate, why)
                reasons = [f"{r}: {n!r}" for r, n in zip(reasons, df.filter(illegal)["__tbname"])]
                rejects.handle("name-illegal", choice, reasons, records)
                df = df.filter(~illegal)
        longest = df["__tbname"].unique().str.len_bytes().max() if df.height else 0
        if (longest or 0) > NAME_MAX:  # type: ignore[operator]
            long = df["__tbname"].str.len_bytes() > NAME_MAX
            choice = rejects.choice("name-too-long")
            if choice != "truncate":
                reasons, records = _bad_rows(df.with_columns(pl.col("__tbname").alias("table")), long, locate,
                                             f"table name is longer than {NAME_MAX} bytes")
                reasons = [f"{r}: {n[:40]!r}..." for r, n in zip(reasons, df.filter(long)["__tbname"])]
                rejects.handle("name-too-long", choice, reasons, records)
            else:
                rejects.handle("name-too-long", choice, [], [], count=int(long.sum()))
            if choice in ("truncate", "truncate-and-archive"):
                df = df.with_columns(truncate_chars(df["__tbname"], NAME_MAX).alias("__tbname"))
            else:
                df = df.filter(~long)
        return df

    def build(self, df: pl.DataFrame, rejects: Rejects, locate: Locate,
              partition: str, position: Any) -> list[TableBatch]:
        out: list[TableBatch] = []
        df = self.steps.run(df, rejects, locate)
        for m, expr, (maps, caster), types in zip(self.models, self._exprs, self._maps, self._types):
            named = df
            if maps:
                named = with_now(named).with_columns(maps).drop(NOW)
                if caster is not None:
                    named = caster.cast(named, m.mapping[0].where, locate, rejects)
            ts = m.columns[0]
            named = _timestamps(named, ts, types[ts].unit or "ms", rejects, locate)
            named = self._names(named, m, expr, rejects, locate)
            precision = types[ts].unit or "ms"
            widen = rejects.choice("value-too-long") == "widen"
            cols = [Column(c, _width(types[c], named[c], widen)) for c in m.columns]
            tags = [Column(t, _width(types[t], named[t], widen)) for t in m.tags]
            for name, group in _by_table(named):
                values = ()
                if tags:
                    first = group.select([pl.col(t.name).cast(pl.Int64) if t.type.name == "TIMESTAMP"
                                          else pl.col(t.name) for t in tags]).row(0)
                    values = tuple(first)
                spec = TableSpec(str(name), tuple(cols), self.database, m.using if m.using else None,
                                 tuple(tags) if m.using else (), values if m.using else (), precision)
                data = conform(group.select(m.columns).to_arrow(), spec)
                out.append(TableBatch(spec, data, partition, None))
        if out:
            last = out[-1]
            out[-1] = TableBatch(last.spec, last.data, partition, position)
        return out


def _suffixed(name: str, origin: str) -> str:
    """A repaired name kept apart from others: ``_`` and 8 hex digits of the source name's sha1,
    within NAME_MAX bytes."""
    tag = "_" + hashlib.sha1(origin.encode()).hexdigest()[:8]
    cut = name.encode()[: NAME_MAX - len(tag)].decode("utf-8", "ignore")
    return cut + tag


def _by_table(df: pl.DataFrame) -> list[tuple[Any, pl.DataFrame]]:
    """Rows per child table, in order of appearance. Rows of one table usually come together (a
    file or export written table by table): then the runs are zero-copy slices, else a hash split."""
    runs = df["__tbname"].rle()
    values, lengths = runs.struct.field("value"), runs.struct.field("len")
    if values.n_unique() == len(values):
        out, start = [], 0
        for name, n in zip(values.to_list(), lengths.to_list()):
            out.append((name, df.slice(start, n)))
            start += n
        return out
    return [(k[0], g) for k, g in df.partition_by("__tbname", as_dict=True, maintain_order=True).items()]


def _bad_rows(df: pl.DataFrame, mask: pl.Series, locate: Locate, why: str) -> tuple[list[str], list[dict[str, Any]]]:
    """Reasons and records (values with provenance) of the rows ``mask`` marks: the rare path."""
    reasons, records = [], []
    for row in df.filter(mask).iter_rows(named=True):
        at, origin = locate(int(row[ROW]))
        reasons.append(f"{at}: {why}")
        records.append({**{k: v for k, v in row.items() if k not in (ROW, "__tbname")}, **origin})
    return reasons, records


def _timestamps(df: pl.DataFrame, ts: str, unit: str, rejects: Rejects, locate: Locate) -> pl.DataFrame:
    """ts-null: a row without its primary timestamp stops the run, goes, or takes the current time."""
    missing = df[ts].is_null()
    if not missing.any():
        return df
    choice = rejects.choice("ts-null")
    if choice == "now":
        rejects.handle("ts-null", choice, [], [], count=int(missing.sum()))
        return df.with_columns(pl.col(ts).fill_null(pl.lit(datetime.now(timezone.utc).replace(tzinfo=None))
                                                     .cast(pl.Datetime(unit))))
    reasons, records = _bad_rows(df, missing, locate, f"required field {ts!r} (the timestamp) is missing")
    rejects.handle("ts-null", choice, reasons, records)
    return df.filter(~missing)


def _width(t: TDType, s: pl.Series, widen: bool) -> TDType:
    """The column's type with its width: declared, or from the data (undeclared, or value-too-long=widen)."""
    t = _plain(t)
    if widen and t.length is not None:
        return t.with_length(max(t.length, sized(t.with_length(None), s).length or 0))
    return sized(t, s)


def _plain(t: TDType) -> TDType:
    """A TIMESTAMP column without the parse unit: the table's precision applies."""
    return TDType(t.name, t.length, t.precision, t.scale) if t.name == "TIMESTAMP" else t


def single_table_model(fields: tuple[Field, ...], table: str) -> Model:
    return Model(table, None, (), tuple(f.alias for f in fields))

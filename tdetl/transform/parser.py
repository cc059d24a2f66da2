"""The ``--parser`` config: load the seed's forms, compile casts and table models to Polars once,
run them per batch.

Forms accepted (see formats/parser.md):
- CSV/Kafka: ``{"parse": {"<field>": {"as": "<type>", "alias": "<name>"}}, "model": ...}``
- MQTT: ``{"parse": {"payload": {"json": [{"name": ..., "alias": ..., "cast": ...}]}}, "model": ...}``
``model`` is one object or a list: ``name`` template (``d{id}``, ``${tbname}``), ``using`` super
table, ``tags`` and ``columns`` (aliases; the first column is the TIMESTAMP).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from ..errors import ConfigError, Rejects
from ..model import Column, SuperTable, TableBatch, TableSpec, conform
from ..polars_types import sized
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


def load_parser(text: str) -> ParserConfig:
    """Parse ``--parser`` text: inline JSON or ``@path``. Errors name the rule and field."""
    where = "--parser"
    if text.startswith("@"):
        path = Path(text[1:]).expanduser()
        where = f"--parser {path}"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"{where}: cannot read: {e.strerror}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{where}: not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: must be a JSON object with 'parse' and/or 'model'")
    unknown = set(doc) - {"parse", "transform", "model", "global"}
    if unknown:
        raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r} (expected parse, transform, model)")
    fields, form, json_fields = _load_parse(doc.get("parse", {}), where)
    steps = load_steps(doc.get("transform"), where)
    raw_models = doc.get("model", [])
    raw_models = [raw_models] if isinstance(raw_models, dict) else raw_models
    if not isinstance(raw_models, list):
        raise ConfigError(f"{where}: 'model' must be an object or a list of objects")
    models = tuple(_load_model(m, i, where) for i, m in enumerate(raw_models))
    known = {f.alias for f in fields} | {f.alias for _, inner in json_fields for f in inner}
    known |= {out for st in steps for out in st.outputs()}
    if form == "payload":
        for m in models:
            for name in (*m.tags, *m.columns, *m.template_fields()):
                if name not in known | {r.target for r in m.mapping}:
                    raise ConfigError(f"{where}: model {m.using or m.name!r} names {name!r},"
                                      f" which no parse, transform or mapping rule produces")
    return ParserConfig(fields, models, form, json_fields, steps)


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


def _load_model(m: Any, i: int, where: str) -> Model:
    if not isinstance(m, dict):
        raise ConfigError(f"{where}: model[{i}] must be an object")
    bad = set(m) - {"name", "using", "tags", "columns", "mapping"}
    if bad:
        raise ConfigError(f"{where}: model[{i}]: unknown key {sorted(bad)[0]!r}")
    name = m.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: model[{i}] needs a 'name' template such as \"d{{id}}\"")
    for key in ("tags", "columns"):
        if key in m and not (isinstance(m[key], list) and all(isinstance(x, str) for x in m[key])):
            raise ConfigError(f"{where}: model[{i}].{key} must be a list of field names")
    if not m.get("columns"):
        raise ConfigError(f"{where}: model[{i}] needs 'columns' (the first is the timestamp)")
    return Model(name, m.get("using"), tuple(m.get("tags", [])), tuple(m["columns"]),
                 load_mapping(m.get("mapping"), f"{where}: model[{i}]"))


# ---- compiled casts (text -> typed), reused for every batch ------------------------------------

# ---- models: typed frame -> TableBatches --------------------------------------------------------

def _name_expr(template: str) -> pl.Expr:
    fields = _TEMPLATE.findall(template)
    if not fields:
        return pl.lit(template)
    return pl.format(_TEMPLATE.sub("{}", template.replace("{}", "")), *[pl.col(f) for f in fields])


class TableBuilder:
    """Runs the ``transform`` steps, then per model its ``mapping`` rules, and turns the frame into
    TableBatches, one per child table per model."""

    def __init__(self, models: tuple[Model, ...], types: dict[str, TDType], database: str | None,
                 where: str, steps: tuple[Step, ...] = ()) -> None:
        self.models, self.database, self.where = models, database, where
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
            missing = named[ts].is_null()
            if missing.any():
                bad = named.filter(missing)[ROW].to_list()
                rejects.reject([f"{locate(i)[0]}: required field {ts!r} (the timestamp) is missing" for i in bad],
                              [locate(i)[1] for i in bad])
                named = named.filter(~missing)
            named = named.with_columns(expr.alias("__tbname"))
            missing = named["__tbname"].is_null()
            if missing.any():
                i = int(missing.arg_true()[0])
                rejects.reject([f"{locate(int(named[ROW][i]))[0]}: table name template"
                               f" {m.name!r} gives no name (a field it uses is empty)"], [])
                named = named.filter(~missing)
            precision = types[ts].unit or "ms"
            cols = [Column(c, sized(_plain(types[c]), named[c])) for c in m.columns]
            tags = [Column(t, sized(_plain(types[t]), named[t])) for t in m.tags]
            for (name,), group in named.partition_by("__tbname", as_dict=True, maintain_order=True).items():
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


def _plain(t: TDType) -> TDType:
    """A TIMESTAMP column without the parse unit: the table's precision applies."""
    return TDType(t.name, t.length, t.precision, t.scale) if t.name == "TIMESTAMP" else t


def single_table_model(fields: tuple[Field, ...], table: str) -> Model:
    return Model(table, None, (), tuple(f.alias for f in fields))

"""Parser transforms beyond the seed (taosX's UI rules in JSON form): ``transform`` steps (regex,
split, convert, filter) that run in order on the typed frame, and per-model ``mapping`` rules that
compute target columns. Each is checked and compiled to Polars once; batches only run them.
See formats/parser.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import polars as pl

from ..errors import ConfigError, shown
from ..polars_types import polars_type, td_type
from ..quality import Rejects
from ..types import TDType, parse_type
from .casts import ROW, Field, FrameCaster
from .expr import NOW, NOW_TYPE, compile_expr

_GROUP = re.compile(r"\(\?P?<([A-Za-z_]\w*)>")
_PLACEHOLDER = re.compile(r"\$\{([^{}]*)\}")
SPLIT_MAX = 1024  # fields one split step may make
STEP_KINDS = ("regex", "split", "convert", "filter")
MAPPING_KINDS = ("mapping", "constant", "generator", "join", "format", "sum", "expr")


@dataclass(frozen=True)
class Step:
    """One ``transform`` entry, shape-checked at load; compiled against field types later."""

    kind: str
    where: str  # "--parser: transform[2] (regex on 'message')", for errors
    source: str  # the field it reads ("" for filter)
    spec: dict[str, Any] = field(hash=False, compare=False)

    def outputs(self) -> list[str]:
        if self.kind == "regex":
            return _GROUP.findall(self.spec["pattern"])
        if self.kind == "split":
            return [f"{self.source}_{i}" for i in range(1, int(self.spec["count"]) + 1)]
        if self.kind == "convert":
            return [self.spec.get("alias") or self.source]
        return []


@dataclass(frozen=True)
class Mapping:
    """One ``model.mapping`` entry: ``target`` column computed by rule ``kind``."""

    target: str
    kind: str
    arg: Any
    where: str
    separator: str = ""
    type: TDType | None = None

    def inputs(self) -> list[str]:
        if self.kind == "mapping":
            return [self.arg]
        if self.kind in ("join", "sum"):
            return list(self.arg)
        return []


def _typed(spec: dict[str, Any], outputs: list[str], where: str) -> dict[str, TDType]:
    raw = spec.get("as")
    if raw is None:
        return {}
    if isinstance(raw, str) and len(outputs) == 1:
        raw = {outputs[0]: raw}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: 'as' must map output fields to types, e.g. {{\"{outputs[0]}\": \"int\"}}")
    out = {}
    for name, t in raw.items():
        if name not in outputs:
            raise ConfigError(f"{where}: 'as' names {name!r}, which this rule does not produce"
                              f" (it makes {', '.join(outputs)})")
        out[name] = parse_type(str(t), f"{where}: 'as' for {name!r}")
    return out


def load_steps(raw: Any, where: str) -> tuple[Step, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: 'transform' must be a list of steps")
    out = []
    for i, item in enumerate(raw):
        at = f"{where}: transform[{i}]"
        kinds = [k for k in STEP_KINDS if isinstance(item, dict) and k in item]
        if len(kinds) != 1:
            raise ConfigError(f"{at} must be an object with exactly one of {', '.join(STEP_KINDS)}")
        kind = kinds[0]
        allowed = {"regex": {"pattern", "as", "optional"}, "split": {"separator", "count", "as"},
                   "convert": {"map", "default", "alias", "as"}, "filter": set()}[kind] | {kind}
        bad = set(item) - allowed
        if bad:
            raise ConfigError(f"{at} ({kind}): unknown key {sorted(bad)[0]!r}"
                              f" (expected {', '.join(sorted(allowed))})")
        source = "" if kind == "filter" else item[kind]
        if kind != "filter" and (not isinstance(source, str) or not source):
            raise ConfigError(f"{at} ({kind}) must name the field it reads, e.g. {{\"{kind}\": \"message\"}}")
        at = f"{at} ({kind} on {source!r})" if source else f"{at} (filter)"
        if kind == "regex":
            pattern = item.get("pattern")
            if not isinstance(pattern, str) or not _GROUP.search(pattern):
                raise ConfigError(f"{at}: 'pattern' needs named groups such as (?<code>\\d+)")
            try:
                pl.Series([], dtype=pl.String).str.extract_groups(pattern)
            except pl.exceptions.PolarsError as e:
                raise ConfigError(f"{at}: pattern {pattern!r} is not a valid regex:"
                                  f" {str(e).strip().splitlines()[-1]}") from None
        elif kind == "split":
            sep, count = item.get("separator"), item.get("count")
            if not isinstance(sep, str) or not sep:
                raise ConfigError(f"{at}: 'separator' must be a non-empty string")
            if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= SPLIT_MAX:
                raise ConfigError(f"{at}: 'count' must be how many fields {source}_1..n to make (an integer"
                                  f" from 1 to {SPLIT_MAX}), not {shown(count)}")
        elif kind == "convert":
            if not isinstance(item.get("map"), dict) or not item["map"]:
                raise ConfigError(f"{at}: 'map' must be an object of value -> new value")
        elif not isinstance(item["filter"], str) or not item["filter"].strip():
            raise ConfigError(f"{at}: needs an expression such as \"current > 10 && starts_with(location, 'Cal')\"")
        step = Step(kind, at, source, dict(item))
        _typed(item, step.outputs(), at)  # checks 'as' now
        out.append(step)
    return tuple(out)


def load_mapping(raw: Any, where: str) -> tuple[Mapping, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: 'mapping' must be an object of target column -> rule")
    out = []
    for target, rule in raw.items():
        at = f"{where}.mapping.{target}"
        if isinstance(rule, str):
            rule = {"mapping": rule}
        kinds = [k for k in MAPPING_KINDS if isinstance(rule, dict) and k in rule]
        if len(kinds) != 1:
            raise ConfigError(f"{at} must be a field name or an object with exactly one of {', '.join(MAPPING_KINDS)}")
        kind = kinds[0]
        allowed = {kind, "as"} | ({"separator"} if kind == "join" else set())
        bad = set(rule) - allowed
        if bad:
            raise ConfigError(f"{at} ({kind}): unknown key {sorted(bad)[0]!r}")
        arg = rule[kind]
        if kind in ("join", "sum") and not (isinstance(arg, list) and arg and all(isinstance(x, str) for x in arg)):
            raise ConfigError(f"{at} ({kind}) needs a list of field names")
        if kind in ("mapping", "format", "expr") and (not isinstance(arg, str) or not arg):
            raise ConfigError(f"{at} ({kind}) needs a non-empty string")
        if kind == "format" and "${" in _PLACEHOLDER.sub("", arg):
            raise ConfigError(f"{at} (format): {shown(arg)} opens a ${{...}} placeholder it does not close"
                              " (write $ alone for a literal dollar)")
        if kind == "generator" and arg != "now":
            raise ConfigError(f"{at}: generator {arg!r} is not known (only \"now\")")
        if kind == "constant" and not (arg is None or isinstance(arg, (str, int, float, bool))):
            raise ConfigError(f"{at}: constant must be a string, number, boolean or null")
        sep = rule.get("separator", ",")
        if not isinstance(sep, str):
            raise ConfigError(f"{at}: separator must be a string")
        t = rule.get("as")
        out.append(Mapping(target, kind, arg, f"{at} ({kind})", sep,
                           parse_type(str(t), f"{at}: 'as'") if t is not None else None))
    return tuple(out)


# ---- compiled ----------------------------------------------------------------------------------

def _schema(types: dict[str, TDType]) -> dict[str, pl.DataType]:
    return {n: polars_type(t) for n, t in types.items()}


@dataclass
class _Compiled:
    step: Step
    exprs: list[pl.Expr]  # new columns (regex/split/convert) or [predicate] (filter)
    typed: dict[str, TDType]  # outputs to cast ('as'), with failures reported
    must_match: pl.Expr | None = None  # regex: rows it must match
    caster: Any = None  # FrameCaster for ``typed``, built once


class StepRunner:
    """The ``transform`` steps compiled against the field types; ``types`` grows by their outputs."""

    def __init__(self, steps: tuple[Step, ...], types: dict[str, TDType]) -> None:
        self.types = dict(types)
        self.compiled: list[_Compiled] = []
        for st in steps:
            if st.source and st.source not in self.types:
                raise ConfigError(f"{st.where}: field {st.source!r} is not in the data"
                                  f" (fields: {', '.join(self.types)})")
            src = pl.col(st.source).cast(pl.String) if st.source else None
            typed = _typed(st.spec, st.outputs(), st.where)
            if st.kind == "regex":
                pattern = st.spec["pattern"]
                groups = src.str.extract_groups(pattern)  # type: ignore[union-attr]
                exprs = [groups.struct.field(n).alias(n) for n in st.outputs()]
                must = None if st.spec.get("optional") else (
                    pl.col(st.source).is_not_null() & ~src.str.contains(pattern)).fill_null(False)  # type: ignore[union-attr]
                self.compiled.append(_Compiled(st, exprs, typed, must))
            elif st.kind == "split":
                n = int(st.spec["count"])
                parts = src.str.splitn(st.spec["separator"], n)  # type: ignore[union-attr]
                names = st.outputs()
                exprs = [parts.struct.field(f"field_{i}").alias(names[i]) for i in range(n)]
                self.compiled.append(_Compiled(st, exprs, typed))
            elif st.kind == "convert":
                m = st.spec["map"]
                new = [_text(v) for v in m.values()]
                default = pl.lit(_text(st.spec["default"]), pl.String) if "default" in st.spec else src
                out = src.replace_strict(list(m), new, default=default, return_dtype=pl.String)  # type: ignore[union-attr]
                self.compiled.append(_Compiled(st, [out.alias(st.outputs()[0])], typed))
            else:
                pred, dtype = compile_expr(st.spec["filter"], st.where, _schema(self.types))
                if dtype != pl.Boolean:
                    raise ConfigError(f"{st.where}: expression {st.spec['filter']!r} gives {dtype},"
                                      f" not true/false")
                self.compiled.append(_Compiled(st, [pred], {}))
            if typed:
                self.compiled[-1].caster = FrameCaster(tuple(Field(n, n, t) for n, t in typed.items()))
            for name in st.outputs():
                self.types[name] = typed.get(name, TDType("VARCHAR"))

    def run(self, df: pl.DataFrame, rejects: Rejects, locate: Any) -> pl.DataFrame:
        if not self.compiled:
            return df
        df = with_now(df)
        for c in self.compiled:
            if c.step.kind == "filter":
                n = df.height
                df = df.filter(c.exprs[0].fill_null(False))
                if df.height < n:
                    rejects.filtered_out(n - df.height)
                continue
            if c.must_match is not None:
                miss = df.select(c.must_match).to_series()
                if miss.any():
                    bad = df.filter(miss)
                    rejects.reject([f"{locate(int(r))[0]}: {c.step.where}: value {v!r} does not match the pattern"
                                   for r, v in zip(bad[ROW], bad[c.step.source])],
                                  [locate(int(r))[1] for r in bad[ROW]])
                    df = df.filter(~miss)
            df = df.with_columns(c.exprs)
            if c.caster is not None:
                df = c.caster.cast(df, c.step.where, locate, rejects)
        return df.drop(NOW)


def with_now(df: pl.DataFrame) -> pl.DataFrame:
    """The batch's wall-clock time as a column, for now() and generator: now."""
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    return df.with_columns(pl.lit(now, NOW_TYPE).alias(NOW))


def _text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def compile_mapping(rules: tuple[Mapping, ...], types: dict[str, TDType]
                    ) -> tuple[list[pl.Expr], dict[str, TDType], dict[str, TDType]]:
    """(expressions, result types of all targets, targets to cast with reported failures)."""
    schema = _schema(types)
    exprs, out, typed = [], {}, {}
    for r in rules:
        for name in r.inputs():
            if name not in types:
                raise ConfigError(f"{r.where}: field {name!r} is not in the data (fields: {', '.join(types)})")
        if r.kind == "mapping":
            e = pl.col(r.arg)
        elif r.kind == "constant":
            e = pl.lit(r.arg)
        elif r.kind == "generator":
            e = pl.col(NOW)
        elif r.kind == "join":
            e = pl.concat_str([pl.col(n).cast(pl.String) for n in r.arg], separator=r.separator)
        elif r.kind == "sum":
            e = pl.sum_horizontal([pl.col(n) for n in r.arg])
        elif r.kind == "expr":
            e, _ = compile_expr(r.arg, r.where, schema)
        else:  # format: literal text with ${expression} placeholders
            parts: list[pl.Expr] = []
            pos = 0
            for m in _PLACEHOLDER.finditer(r.arg):
                if m.start() > pos:
                    parts.append(pl.lit(r.arg[pos:m.start()]))
                parts.append(compile_expr(m.group(1), r.where, schema)[0].cast(pl.String))
                pos = m.end()
            if pos < len(r.arg):
                parts.append(pl.lit(r.arg[pos:]))
            e = pl.concat_str(parts) if parts else pl.lit("")
        try:
            dtype = pl.DataFrame(schema={**schema, NOW: NOW_TYPE}).select(e.alias("o"))["o"].dtype
        except pl.exceptions.PolarsError as err:
            raise ConfigError(f"{r.where}: does not fit the field types: {str(err).strip().splitlines()[0]}") from None
        if dtype == pl.Null:
            dtype = pl.String
            e = e.cast(pl.String)
        if r.type is not None:
            out[r.target] = r.type
            if r.kind == "generator" and r.type.name == "TIMESTAMP":
                e = e.dt.cast_time_unit(r.type.unit or "ms")
            elif polars_type(r.type) != dtype or r.type.length is not None:
                typed[r.target] = r.type
        else:
            t = td_type(dtype, r.where)
            if t.name == "TIMESTAMP" and dtype != NOW_TYPE:
                t = types.get(r.arg, t) if r.kind == "mapping" else t
            elif t.name == "TIMESTAMP":
                t = TDType("TIMESTAMP", unit="ms")
                e = e.dt.cast_time_unit("ms")
            out[r.target] = t
        exprs.append(e.alias(r.target))
    return exprs, out, typed

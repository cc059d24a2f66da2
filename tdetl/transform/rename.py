"""``-T`` / ``--transform`` rules from taosX: ``add-tag:<tag>=<value>`` and
``rename-{table,child-table,super-table}:{prefix,suffix,template,replace_with_regex}:<value>``.
They change table descriptions only, so they cost nothing per row; results are cached per table."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from ..errors import ConfigError
from ..model import Column, TableBatch, TableSpec
from ..types import TDType

_TARGETS = {"rename-table", "rename-child-table", "rename-super-table"}


def _renamer(how: str, value: str, rule: str) -> Callable[[str], str]:
    how = how.lower().replace("-", "_")
    if how == "prefix":
        return lambda n: value + n
    if how == "suffix":
        return lambda n: n + value
    if how == "template":
        if "{}" not in value and "{name}" not in value:
            raise ConfigError(f"-T {rule!r}: a template needs {{name}} (or {{}}) for the old name")
        return lambda n: value.replace("{name}", n).replace("{}", n)
    if how == "replace_with_regex":
        pattern, sep, repl = value.partition("::")
        if not sep:
            raise ConfigError(f"-T {rule!r}: replace_with_regex needs <regex>::<replacement>")
        pattern = re.sub(r"\(\?<([A-Za-z_]\w*)>", r"(?P<\1>", pattern)  # Rust named groups
        repl = re.sub(r"\$\{?([A-Za-z_]\w*)\}?", r"\\g<\1>", repl)
        try:
            rx = re.compile(pattern)
        except re.error as e:
            raise ConfigError(f"-T {rule!r}: bad regex: {e}") from None
        return lambda n: rx.sub(repl, n, count=1)
    raise ConfigError(f"-T {rule!r}: unknown rename {how!r} (prefix, suffix, template, replace_with_regex)")


def compile_transform(rule: str) -> Callable[[TableBatch], Iterable[TableBatch]]:
    kind, _, rest = rule.partition(":")
    kind = kind.lower().replace("_", "-")
    if kind == "add-tag":
        name, eq, value = rest.partition("=")
        if not name or not eq:
            raise ConfigError(f"-T {rule!r}: expected add-tag:<tag>=<value>")
        tag = Column(name, TDType("VARCHAR", max(1, len(value.encode()))))

        def change(spec: TableSpec) -> TableSpec:
            if spec.stable is None or name in (t.name for t in spec.tags):
                return spec
            return spec.replace(tags=(*spec.tags, tag), tag_values=(*spec.tag_values, value))
    elif kind in _TARGETS:
        how, _, value = rest.partition(":")
        fn = _renamer(how, value, rule)

        def change(spec: TableSpec) -> TableSpec:
            if kind == "rename-super-table":
                return spec.replace(stable=fn(spec.stable)) if spec.stable else spec
            if kind == "rename-child-table" and spec.stable is None:
                return spec
            return spec.replace(name=fn(spec.name))
    else:
        raise ConfigError(f"-T {rule!r}: unknown transform {kind!r} (add-tag, rename-table,"
                          " rename-child-table, rename-super-table)")
    cache: dict[int, tuple[TableSpec, TableSpec]] = {}

    def apply(batch: TableBatch) -> Iterable[TableBatch]:
        hit = cache.get(id(batch.spec))
        if hit is None or hit[0] is not batch.spec:
            hit = cache[id(batch.spec)] = (batch.spec, change(batch.spec))
        return [TableBatch(hit[1], batch.data, batch.partition, batch.position)]
    return apply

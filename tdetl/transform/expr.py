"""The small expression language of parser filters, ``expr`` mappings and ``format`` placeholders,
compiled once to a Polars expression (so each batch runs vectorised).

    expr := a || b | a && b | !a | a == b | a != b | a < b | a <= b | a > b | a >= b
          | a + b | a - b | a * b | a / b | a % b | -a | f(args) | field | `odd field` | literal

Literals: numbers, 'text' or "text", true, false, null. Functions are listed in ``FUNCTIONS``.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import polars as pl

from ..errors import ConfigError, shown

_TOKEN = re.compile(r"""\s*(?:
    (?P<num>\d+\.\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|\d+(?:[eE][+-]?\d+)?)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<name>[A-Za-z_$][\w$.]*|`[^`]+`)
  | (?P<op>\|\||&&|==|!=|<=|>=|[-+*/%<>!=(),])
)""", re.X)
NOW_TYPE = pl.Datetime("us")
NOW = "__now"  # a column holding the batch's wall-clock time (UTC), added by the runner per batch
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"'}


def _text(e: pl.Expr) -> pl.Expr:
    return e.cast(pl.String)


def _instant(v: Any, where: str) -> datetime:
    """A time literal: RFC 3339 / ISO text (UTC when it has no zone) or epoch milliseconds."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return datetime.fromtimestamp(v / 1000, timezone.utc).replace(tzinfo=None)
    if isinstance(v, str):
        try:
            t = datetime.fromisoformat(v.strip())
        except ValueError:
            pass
        else:
            return t.astimezone(timezone.utc).replace(tzinfo=None) if t.tzinfo else t
    raise ConfigError(f"{where}: {v!r} is not a time (RFC 3339 text or epoch milliseconds)")


class _Lit:
    """A literal argument, kept as its Python value for functions that need constants."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def expr(self) -> pl.Expr:
        return pl.lit(self.value)


Arg = Any  # pl.Expr or _Lit
_SPACE, _NONE, _ZERO, _E = _Lit(" "), _Lit(None), _Lit(0), _Lit(math.e)


def _e(a: Arg) -> pl.Expr:
    return a.expr() if isinstance(a, _Lit) else a


def _const(a: Arg, what: str, where: str) -> Any:
    if not isinstance(a, _Lit):
        raise ConfigError(f"{where}: {what} must be a literal")
    return a.value


def _between(where: str, ts: Arg, t1: Arg, t2: Arg) -> pl.Expr:
    lo = _instant(_const(t1, "between_time_range's start", where), where)
    hi = _instant(_const(t2, "between_time_range's end", where), where)
    return _e(ts).is_between(pl.lit(lo), pl.lit(hi), closed="both")


def _pad(left: bool) -> Callable[..., pl.Expr]:
    def pad(where: str, s: Arg, n: Arg, ch: Arg = _SPACE) -> pl.Expr:
        width, fill = _const(n, "pad's width", where), _const(ch, "pad's fill", where)
        if not isinstance(width, int) or not isinstance(fill, str) or len(fill) != 1:
            raise ConfigError(f"{where}: pad needs an integer width and a one-character fill")
        t = _text(_e(s))
        return t.str.pad_start(width, fill) if left else t.str.pad_end(width, fill)
    return pad


def _sub_string(where: str, s: Arg, start: Arg, length: Arg = _NONE) -> pl.Expr:
    """0-based ``start``; a negative start counts from the end; no length = to the end."""
    return _text(_e(s)).str.slice(_e(start), None if isinstance(length, _Lit) and length.value is None
                                  else _e(length))


def _round(where: str, x: Arg, n: Arg = _ZERO) -> pl.Expr:
    return _e(x).round(_const(n, "round's decimals", where))


def _log(where: str, x: Arg, base: Arg = _E) -> pl.Expr:
    return _e(x).log(_const(base, "log's base", where))


def _fixed(fn: Callable[..., pl.Expr]) -> Callable[..., pl.Expr]:
    return lambda where, *args: fn(*[_e(a) for a in args])


# name -> (builder(where, *args), min args, max args)
FUNCTIONS: dict[str, tuple[Callable[..., pl.Expr], int, int]] = {
    "starts_with": (_fixed(lambda s, p: _text(s).str.starts_with(p)), 2, 2),
    "ends_with": (_fixed(lambda s, p: _text(s).str.ends_with(p)), 2, 2),
    "contains": (_fixed(lambda s, p: _text(s).str.contains(p, literal=True)), 2, 2),
    "len": (_fixed(lambda s: _text(s).str.len_chars().cast(pl.Int64)), 1, 1),
    "upper": (_fixed(lambda s: _text(s).str.to_uppercase()), 1, 1),
    "lower": (_fixed(lambda s: _text(s).str.to_lowercase()), 1, 1),
    "trim": (_fixed(lambda s: _text(s).str.strip_chars()), 1, 1),
    "ltrim": (_fixed(lambda s: _text(s).str.strip_chars_start()), 1, 1),
    "rtrim": (_fixed(lambda s: _text(s).str.strip_chars_end()), 1, 1),
    "pad": (_pad(True), 2, 3),
    "lpad": (_pad(True), 2, 3),
    "rpad": (_pad(False), 2, 3),
    "sub_string": (_sub_string, 2, 3),
    "replace": (_fixed(lambda s, a, b: _text(s).str.replace_all(a, b, literal=True)), 3, 3),
    "concat": (_fixed(lambda *xs: pl.concat_str([_text(x) for x in xs])), 1, 99),
    "to_string": (_fixed(_text), 1, 1),
    "abs": (_fixed(lambda x: x.abs()), 1, 1),
    "ceil": (_fixed(lambda x: x.ceil()), 1, 1),
    "floor": (_fixed(lambda x: x.floor()), 1, 1),
    "round": (_round, 1, 2),
    "sqrt": (_fixed(lambda x: x.sqrt()), 1, 1),
    "cbrt": (_fixed(lambda x: x.cbrt()), 1, 1),
    "pow": (_fixed(lambda x, y: x.cast(pl.Float64).pow(y)), 2, 2),
    "exp": (_fixed(lambda x: x.exp()), 1, 1),
    "ln": (_fixed(lambda x: x.log()), 1, 1),
    "log": (_log, 1, 2),
    "log10": (_fixed(lambda x: x.log10()), 1, 1),
    "log2": (_fixed(lambda x: x.log(2)), 1, 1),
    "sin": (_fixed(lambda x: x.sin()), 1, 1),
    "cos": (_fixed(lambda x: x.cos()), 1, 1),
    "tan": (_fixed(lambda x: x.tan()), 1, 1),
    "asin": (_fixed(lambda x: x.arcsin()), 1, 1),
    "acos": (_fixed(lambda x: x.arccos()), 1, 1),
    "atan": (_fixed(lambda x: x.arctan()), 1, 1),
    "min": (_fixed(lambda *xs: pl.min_horizontal(*xs)), 1, 99),
    "max": (_fixed(lambda *xs: pl.max_horizontal(*xs)), 1, 99),
    "now": (_fixed(lambda: pl.col(NOW)), 0, 0),
    "between_time_range": (_between, 3, 3),
}
_COMPARE = {"==": "eq", "=": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}
_PRECEDENCE = [("||",), ("&&",), tuple(_COMPARE), ("+", "-"), ("*", "/", "%")]


class _Parser:
    def __init__(self, text: str, where: str, fields: set[str]) -> None:
        self.text, self.where, self.fields = text, where, fields
        self.tokens: list[tuple[str, str, int]] = []
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            m = _TOKEN.match(text, pos)
            if not m:
                self.fail(f"unexpected {text[pos:].strip()[:10]!r}", pos)
            kind = m.lastgroup or "op"
            self.tokens.append((kind, m.group(kind), m.start(kind)))
            pos = m.end()
        self.i = 0
        self.used: set[str] = set()

    def fail(self, why: str, pos: int | None = None) -> None:
        at = f" at column {pos + 1}" if pos is not None else ""
        raise ConfigError(f"{self.where}: expression {self.text!r}: {why}{at}")

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, op: str | None = None) -> tuple[str, str, int]:
        t = self.peek()
        if t is None:
            self.fail(f"expected {op!r} but the expression ended" if op else "unexpected end")
        assert t is not None
        if op is not None and (t[0] != "op" or t[1] != op):
            self.fail(f"expected {op!r}, found {t[1]!r}", t[2])
        self.i += 1
        return t

    def parse(self) -> Arg:
        out = self.binary(0)
        if self.peek() is not None:
            t = self.peek()
            assert t is not None
            self.fail(f"unexpected {t[1]!r}", t[2])
        return out

    def binary(self, level: int) -> Arg:
        if level == len(_PRECEDENCE):
            return self.unary()
        left = self.binary(level + 1)
        while (t := self.peek()) is not None and t[0] == "op" and t[1] in _PRECEDENCE[level]:
            self.i += 1
            right = self.binary(level + 1)
            left = _apply(t[1], _e(left), _e(right))
            if level == 2:  # comparisons do not chain
                break
        return left

    def unary(self) -> Arg:
        t = self.peek()
        if t is not None and t[0] == "op" and t[1] in ("!", "-"):
            self.i += 1
            inner = self.unary()
            if t[1] == "-" and isinstance(inner, _Lit) and isinstance(inner.value, (int, float)):
                return _Lit(-inner.value)
            return ~_e(inner) if t[1] == "!" else -_e(inner)
        return self.atom()

    def atom(self) -> Arg:
        kind, text, pos = self.take()
        if kind == "num":
            return _Lit(float(text) if any(c in text for c in ".eE") else int(text))
        if kind == "str":
            return _Lit(re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), text[1:-1]))
        if kind == "op" and text == "(":
            inner = self.binary(0)
            self.take(")")
            return inner
        if kind == "name":
            if text in ("true", "false"):
                return _Lit(text == "true")
            if text == "null":
                return _Lit(None)
            nxt = self.peek()
            if nxt is not None and nxt[1] == "(" and not text.startswith("`"):
                return self.call(text, pos)
            name = text.strip("`")
            if name not in self.fields:
                self.fail(f"unknown field {name!r} (fields: {', '.join(sorted(self.fields))})", pos)
            self.used.add(name)
            return pl.col(name)
        self.fail(f"unexpected {text!r}", pos)
        raise AssertionError

    def call(self, name: str, pos: int) -> Arg:
        if name not in FUNCTIONS:
            self.fail(f"unknown function {name!r} (known: {', '.join(sorted(FUNCTIONS))})", pos)
        self.take("(")
        args: list[Arg] = []
        if not (self.peek() is not None and self.peek()[1] == ")"):  # type: ignore[index]
            args.append(self.binary(0))
            while self.peek() is not None and self.peek()[1] == ",":  # type: ignore[index]
                self.i += 1
                args.append(self.binary(0))
        self.take(")")
        fn, lo, hi = FUNCTIONS[name]
        if not lo <= len(args) <= hi:
            want = str(lo) if lo == hi else f"{lo} to {hi}"
            self.fail(f"{name}() takes {want} arguments, not {len(args)}", pos)
        return fn(f"{self.where}: {name}()", *args)


def _apply(op: str, a: pl.Expr, b: pl.Expr) -> pl.Expr:
    if op == "||":
        return a | b
    if op == "&&":
        return a & b
    if op in _COMPARE:
        return getattr(a, _COMPARE[op])(b)
    return {"+": a.add, "-": a.sub, "*": a.mul, "/": a.truediv, "%": a.mod}[op](b)


EXPR_MAX = 10_000  # characters of one expression
NESTING_MAX = 64  # levels of parentheses


def compile_expr(text: str, where: str, schema: dict[str, pl.DataType]) -> tuple[pl.Expr, pl.DataType]:
    """(expression, result type) for ``text`` over fields ``schema``. Type errors surface here,
    once, by running the expression on an empty frame of that schema."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{where}: needs an expression, got {text!r}")
    if len(text) > EXPR_MAX:
        raise ConfigError(f"{where}: an expression of {len(text):,} characters is longer than {EXPR_MAX:,}")
    depth = max(itertools.accumulate(1 if c == "(" else -1 if c == ")" else 0 for c in text), default=0)
    if depth > NESTING_MAX:  # the parser recurses per level: refused before Python's stack is
        raise ConfigError(f"{where}: expression nests parentheses {depth} deep (at most {NESTING_MAX})")
    p = _Parser(text, where, set(schema) - {NOW})
    try:
        expr = _e(p.parse())
    except RecursionError:  # deep without parentheses (a long chain of unary operators)
        raise ConfigError(f"{where}: expression {shown(text)} nests too deep") from None
    try:
        dtype = pl.DataFrame(schema={**schema, NOW: NOW_TYPE}).select(expr.alias("out"))["out"].dtype
    except (pl.exceptions.PolarsError, TypeError, ValueError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{where}: expression {text!r} does not fit the field types: {msg}") from None
    return expr, dtype

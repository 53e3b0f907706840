"""A small expression language in which each feature is declared once and compiled twice.

`features/flight_features` (offline, set-based) compiles a declaration to a DuckDB SQL expression;
the online scoring service compiles the same declaration to a Python function over one row of looked-up
inputs. Running DuckDB per request was measured first: a projection of ~40 expressions costs 4-6 ms
per query on the 2-core machine (planning dominates), more than the whole latency budget, while the
compiled Python evaluates a row in about 0.1 ms.

Semantics follow SQL: NULL (None) propagates through arithmetic, comparisons and functions; CASE
without ELSE gives NULL; a NULL condition counts as false. Only the operations features need exist,
and `data_platform_tests/test_online.py` holds both compilations to the same values on real rows.

Stdlib only: the code location imports this module.
"""

from __future__ import annotations

import bisect
import datetime as dt
from dataclasses import dataclass
from typing import Any, Callable, Sequence

Row = dict[str, Any]


class Expr:
    """An expression over named input columns: `.sql()` for DuckDB, `.evaluate(row)` for Python."""

    def sql(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def evaluate(self, row: Row) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def columns(self) -> set[str]:
        """Input columns the expression reads."""
        return set().union(*(child.columns() for child in self.children())) if self.children() else set()

    def children(self) -> Sequence["Expr"]:
        return ()

    # operators build nodes, so declarations read like the SQL they become
    def __add__(self, other): return Arith("+", self, lit(other))
    def __sub__(self, other): return Arith("-", self, lit(other))
    def __mul__(self, other): return Arith("*", self, lit(other))
    def __floordiv__(self, other): return Arith("//", self, lit(other))
    def __mod__(self, other): return Arith("%", self, lit(other))
    def __gt__(self, other): return Compare(">", self, lit(other))
    def __ge__(self, other): return Compare(">=", self, lit(other))


def lit(value) -> Expr:
    return value if isinstance(value, Expr) else Const(value)


@dataclass(frozen=True, eq=False)
class Col(Expr):
    name: str

    def sql(self) -> str:
        return self.name

    def evaluate(self, row: Row) -> Any:
        return row[self.name]

    def py(self) -> str:
        return f"r[{self.name!r}]"

    def columns(self) -> set[str]:
        return {self.name}


@dataclass(frozen=True, eq=False)
class Const(Expr):
    value: int | float

    def sql(self) -> str:
        if not isinstance(self.value, (int, float)) or isinstance(self.value, bool):
            raise TypeError(f"only numeric constants are supported, got {self.value!r}")
        return repr(self.value)

    def evaluate(self, row: Row) -> Any:
        return self.value

    def py(self) -> str:
        return repr(self.value)


_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    # Integer division and modulo are used on non-negative integers only (hhmm times), where SQL's
    # truncation and Python's flooring agree.
    "//": lambda a, b: a // b,
    "%": lambda a, b: a % b,
}


@dataclass(frozen=True, eq=False)
class Arith(Expr):
    op: str
    left: Expr
    right: Expr

    def sql(self) -> str:
        return f"({self.left.sql()} {self.op} {self.right.sql()})"

    def evaluate(self, row: Row) -> Any:
        a, b = self.left.evaluate(row), self.right.evaluate(row)
        return None if a is None or b is None else _ARITH[self.op](a, b)

    def py(self) -> str:
        return f"_arith[{self.op!r}]({self.left.py()}, {self.right.py()})"

    def children(self):
        return (self.left, self.right)


@dataclass(frozen=True, eq=False)
class Compare(Expr):
    op: str
    left: Expr
    right: Expr

    def sql(self) -> str:
        return f"({self.left.sql()} {self.op} {self.right.sql()})"

    def evaluate(self, row: Row) -> Any:
        a, b = self.left.evaluate(row), self.right.evaluate(row)
        if a is None or b is None:
            return None
        return a > b if self.op == ">" else a >= b

    def py(self) -> str:
        return f"_compare[{self.op!r}]({self.left.py()}, {self.right.py()})"

    def children(self):
        return (self.left, self.right)


@dataclass(frozen=True, eq=False)
class Ratio(Expr):
    """`numerator / denominator` as a DOUBLE when the denominator is positive, else NULL."""

    numerator: Expr
    denominator: Expr

    def sql(self) -> str:
        n, d = self.numerator.sql(), self.denominator.sql()
        return f"CASE WHEN {d} > 0 THEN {n}::DOUBLE / {d} END"

    def evaluate(self, row: Row) -> Any:
        n, d = self.numerator.evaluate(row), self.denominator.evaluate(row)
        if d is None or not d > 0 or n is None:
            return None
        return float(n) / d

    def py(self) -> str:
        return f"_ratio({self.numerator.py()}, {self.denominator.py()})"

    def children(self):
        return (self.numerator, self.denominator)


@dataclass(frozen=True, eq=False)
class When(Expr):
    """CASE WHEN condition THEN value END."""

    condition: Expr
    value: Expr

    def sql(self) -> str:
        return f"CASE WHEN {self.condition.sql()} THEN {self.value.sql()} END"

    def evaluate(self, row: Row) -> Any:
        return self.value.evaluate(row) if self.condition.evaluate(row) is True else None

    def py(self) -> str:
        return f"({self.value.py()} if {self.condition.py()} is True else None)"

    def children(self):
        return (self.condition, self.value)


@dataclass(frozen=True, eq=False)
class Coalesce(Expr):
    first: Expr
    otherwise: Expr

    def sql(self) -> str:
        return f"coalesce({self.first.sql()}, {self.otherwise.sql()})"

    def evaluate(self, row: Row) -> Any:
        value = self.first.evaluate(row)
        return self.otherwise.evaluate(row) if value is None else value

    def py(self) -> str:
        return f"_coalesce({self.first.py()}, {self.otherwise.py()})"

    def children(self):
        return (self.first, self.otherwise)


_DATE_PARTS: dict[str, Callable[[dt.date], int]] = {
    "isodow": lambda day: day.isoweekday(),
    "dayofyear": lambda day: day.timetuple().tm_yday,
    "month": lambda day: day.month,
    "year": lambda day: day.year,
}


@dataclass(frozen=True, eq=False)
class DatePart(Expr):
    part: str
    date: Expr

    def sql(self) -> str:
        return f"{self.part}({self.date.sql()})"

    def evaluate(self, row: Row) -> Any:
        value = self.date.evaluate(row)
        return None if value is None else _DATE_PARTS[self.part](value)

    def py(self) -> str:
        return f"_date_part[{self.part!r}]({self.date.py()})"

    def children(self):
        return (self.date,)


@dataclass(frozen=True, eq=False)
class HoursBefore(Expr):
    """A timestamp minus a whole number of hours."""

    timestamp: Expr
    hours: int

    def sql(self) -> str:
        return f"({self.timestamp.sql()} - INTERVAL {int(self.hours)} HOUR)"

    def evaluate(self, row: Row) -> Any:
        value = self.timestamp.evaluate(row)
        return None if value is None else value - dt.timedelta(hours=self.hours)

    def py(self) -> str:
        return f"_hours_before({self.timestamp.py()}, {int(self.hours)})"

    def children(self):
        return (self.timestamp,)


def _epoch_minutes(value: dt.datetime) -> int:
    return int(value.timestamp() // 60)


@dataclass(frozen=True, eq=False)
class MinutesBetween(Expr):
    """Minute boundaries from `start` to `end` (DuckDB `date_diff('minute', start, end)`)."""

    start: Expr
    end: Expr

    def sql(self) -> str:
        return f"date_diff('minute', {self.start.sql()}, {self.end.sql()})"

    def evaluate(self, row: Row) -> Any:
        a, b = self.start.evaluate(row), self.end.evaluate(row)
        return None if a is None or b is None else _epoch_minutes(b) - _epoch_minutes(a)

    def py(self) -> str:
        return f"_minutes_between({self.start.py()}, {self.end.py()})"

    def children(self):
        return (self.start, self.end)


@dataclass(frozen=True, eq=False)
class DaysToNearest(Expr):
    """Days from a date to the nearest date of a list given as the query parameter `$<param>`
    (offline) or the row's list `param` (online)."""

    date: Expr
    param: str

    def sql(self) -> str:
        return f"list_min(list_transform(${self.param}, lambda h: abs(date_diff('day', {self.date.sql()}, h))))"

    def evaluate(self, row: Row) -> Any:
        """The row's list must be sorted: the nearest date is found by bisection."""
        day = self.date.evaluate(row)
        dates = row[self.param]
        if day is None or not dates:
            return None
        at = bisect.bisect_left(dates, day)
        return min(abs((dates[i] - day).days) for i in (at - 1, at) if 0 <= i < len(dates))

    def py(self) -> str:
        return f"_days_to_nearest({self.date.py()}, r[{self.param!r}])"

    def children(self):
        return (self.date,)


def select_list(definitions: dict[str, Expr]) -> str:
    """`expr AS name, ...` for a SELECT over a relation holding the input columns."""
    return ",\n    ".join(f"{expression.sql()} AS {name}" for name, expression in definitions.items())


def evaluate_all(definitions: dict[str, Expr], row: Row) -> dict[str, Any]:
    return {name: expression.evaluate(row) for name, expression in definitions.items()}


# --- compiled Python: one generated function per set of definitions --------------------------------
# `evaluate` walks the tree (the reference semantics); `compile_python` generates the same
# operations as one function, about 3x faster. Tests hold the two to equal values.

def _null_safe(function):
    return lambda a, b: None if a is None or b is None else function(a, b)


def _null_safe1(function):
    return lambda a: None if a is None else function(a)


_NEAREST: dict = {}


def _days_to_nearest(day, dates):
    if day is None or not dates:
        return None
    key = (day, dates[0], dates[-1], len(dates))  # the same holiday list: one answer per day
    found = _NEAREST.get(key)
    if found is None:
        at = bisect.bisect_left(dates, day)
        found = min(abs((dates[i] - day).days) for i in (at - 1, at) if 0 <= i < len(dates))
        if len(_NEAREST) > 100_000:
            _NEAREST.clear()
        _NEAREST[key] = found
    return found


_HELPERS = {
    "_arith": {op: _null_safe(function) for op, function in _ARITH.items()},
    "_compare": {">": _null_safe(lambda a, b: a > b), ">=": _null_safe(lambda a, b: a >= b)},
    "_ratio": lambda n, d: None if d is None or n is None or not d > 0 else float(n) / d,
    "_coalesce": lambda value, otherwise: otherwise if value is None else value,
    "_date_part": {part: _null_safe1(function) for part, function in _DATE_PARTS.items()},
    "_hours_before": lambda value, hours: None if value is None else value - dt.timedelta(hours=hours),
    "_minutes_between": _null_safe(lambda a, b: _epoch_minutes(b) - _epoch_minutes(a)),
    "_days_to_nearest": _days_to_nearest,
}


def compile_python(definitions: dict[str, Expr]) -> Callable[[Row], dict[str, Any]]:
    """One Python function computing every definition from a row of inputs; a sub-expression shared by
    several definitions (the same declared object, e.g. the cut-off) is computed once."""
    uses: dict[int, int] = {}

    def count(node: Expr) -> None:
        uses[id(node)] = uses.get(id(node), 0) + 1
        if uses[id(node)] == 1:
            for child in node.children():
                count(child)

    for expression in definitions.values():
        count(expression)
    lines: list[str] = []
    names: dict[int, str] = {}

    def emit(node: Expr) -> str:
        if id(node) in names:
            return names[id(node)]
        for child in node.children():
            emit(child)
        if uses.get(id(node), 0) > 1 and not isinstance(node, (Col, Const)):
            saved = dict(names)
            names.pop(id(node), None)
            text = _py_with(node, saved)
            name = f"_v{len(lines)}"
            lines.append(f"    {name} = {text}")
            names[id(node)] = name
            return name
        return _py_with(node, names)

    body = ",\n        ".join(f"{name!r}: {emit(expression)}" for name, expression in definitions.items())
    source = "def features(r):\n" + "".join(line + "\n" for line in lines) + f"    return {{\n        {body},\n    }}\n"
    namespace = dict(_HELPERS)
    exec(compile(source, "<feature definitions>", "exec"), namespace)
    function = namespace["features"]
    function.source = source
    return function


def _py_with(node: Expr, names: dict[int, str]) -> str:
    """`node.py()` with the hoisted sub-expressions replaced by their local names."""
    class Named(Expr):
        def __init__(self, name):
            self.name = name

        def py(self):
            return self.name

    if not node.children():
        return node.py()
    replaced = {}
    for field_name, value in vars(node).items():
        if isinstance(value, Expr):
            replaced[field_name] = Named(names[id(value)]) if id(value) in names else _Substituted(value, names)
    clone = object.__new__(type(node))
    for field_name, value in vars(node).items():
        object.__setattr__(clone, field_name, replaced.get(field_name, value))
    return clone.py()


class _Substituted(Expr):
    """A child rendered with hoisted names substituted deeper down."""

    def __init__(self, node: Expr, names: dict[int, str]):
        self.node, self.names = node, names

    def py(self) -> str:
        return _py_with(self.node, self.names)

"""Table contracts: what every warehouse table holds, column by column, as plain data.

A `TableContract` gives each column its SQL type, a description, nullability and its rules. The same
object produces the DuckDB DDL, the `dagster/column_schema` catalog metadata, the cleaning SQL and,
when a check runs, the pandera schema that validates the table (`to_pandera`; pandera and pandas
are imported only then, so loading the code location needs neither). Three kinds of rule live here:

* value rules (`Rule`: a range, allowed values, a pattern): a value that breaks one is wrong, so
  the cleaned layer quarantines its row;
* plausibility (`plausible=`, `max_jump=`): a measurement outside physical limits, or an isolated
  jump away from both neighbouring observations, is a sensor glitch; the cleaned layer sets that one
  value to NULL, records it in the row's `nulled_values` and keeps the rest of the row;
* `max_null_rate=`: the share of NULLs a column may have in one partition (a quality check, WARN).

Datasets get their contracts from their ODCS files (`data_platform.datasets`); the predictions and
performance tables, which the platform itself computes, from theirs (`data_platform.ml_contracts`,
read by the same loader); the features table from the feature declarations
(`data_platform.features`, one per column).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

from dagster import TableColumn, TableColumnConstraints, TableSchema

# SQL types a contract may use, with the pandas dtype a check validates them as.
SQL_TO_PANDAS = {
    "VARCHAR": "str",
    "BIGINT": "Int64",
    "INTEGER": "Int64",
    "SMALLINT": "Int64",
    "DOUBLE": "float64",
    "BOOLEAN": "boolean",
    "DATE": "datetime64[ns]",
    "TIMESTAMP": "datetime64[ns]",
    "TIMESTAMPTZ": "datetime64[ns, UTC]",
}

# Title of the rules whose violation nulls the value (plausibility) instead of rejecting the row.
PLAUSIBLE = "plausible"
# The column every cleaned table with plausibility rules has: what was set to NULL and why.
NULLED_VALUES = "nulled_values"


@dataclass(frozen=True)
class Rule:
    """A value rule on one column. `kind` is one of: between, at_least, greater_than, one_of, matches,
    max_length."""

    kind: str
    low: Optional[float] = None
    high: Optional[float] = None
    values: tuple = ()
    pattern: str = ""
    title: str = ""

    def violated_sql(self, value: str) -> str:
        """SQL that is true when `value` (an SQL expression) breaks the rule; NULL never does."""
        if self.kind == "between":
            return f"({value} < {sql_literal(self.low)} OR {value} > {sql_literal(self.high)})"
        if self.kind == "at_least":
            return f"({value} < {sql_literal(self.low)})"
        if self.kind == "greater_than":
            return f"({value} <= {sql_literal(self.low)})"
        if self.kind == "one_of":
            return f"({value} NOT IN ({', '.join(sql_literal(v) for v in self.values)}))"
        if self.kind == "matches":
            return f"(NOT regexp_matches({value}, {sql_literal(self.pattern)}))"
        if self.kind == "max_length":
            return f"(length({value}) > {int(self.high)})"
        raise ValueError(f"unknown rule kind {self.kind}")

    def text(self) -> str:
        """The rule as a short phrase for people (catalog constraints, quarantine reasons)."""
        if self.kind == "between":
            return f"between {_number(self.low)} and {_number(self.high)}"
        if self.kind == "at_least":
            return f"at least {_number(self.low)}"
        if self.kind == "greater_than":
            return f"greater than {_number(self.low)}"
        if self.kind == "one_of":
            return f"one of {', '.join(map(str, self.values))}"
        if self.kind == "max_length":
            return f"at most {int(self.high)} characters"
        return f"matches {self.pattern}"

    def pandera_check(self):
        import pandera.pandas as pa

        if self.kind == "between":
            return pa.Check.in_range(self.low, self.high, title=self.title or None)
        if self.kind == "at_least":
            return pa.Check.ge(self.low)
        if self.kind == "greater_than":
            return pa.Check.gt(self.low)
        if self.kind == "one_of":
            return pa.Check.isin(list(self.values))
        if self.kind == "max_length":
            return pa.Check.str_length(max_value=int(self.high))
        return pa.Check.str_matches(self.pattern)


def between(low: float, high: float) -> Rule:
    return Rule("between", low=low, high=high)


def at_least(low: float) -> Rule:
    return Rule("at_least", low=low)


def greater_than(low: float) -> Rule:
    return Rule("greater_than", low=low)


def one_of(values) -> Rule:
    return Rule("one_of", values=tuple(values))


def matches(pattern: str) -> Rule:
    return Rule("matches", pattern=pattern)


def max_length(characters: int) -> Rule:
    return Rule("max_length", high=characters)


def _number(value) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


@dataclass(frozen=True)
class Column:
    sql_type: str
    description: str
    nullable: bool = True
    rules: tuple[Rule, ...] = ()
    plausible: Optional[tuple[float, float]] = None
    max_jump: Optional[float] = None
    max_null_rate: Optional[float] = None


def column(
    sql_type: str,
    description: str,
    nullable: bool = True,
    rules: list[Rule] | tuple[Rule, ...] = (),
    *,
    plausible: tuple[float, float] | None = None,
    max_jump: float | None = None,
    max_null_rate: float | None = None,
) -> Column:
    """A contract column. `plausible=(low, high)` and `max_jump` are plausibility rules (see the
    module docstring); `max_null_rate` is the largest share of NULLs allowed in one partition."""
    if sql_type not in SQL_TO_PANDAS:
        raise ValueError(f"unsupported SQL type {sql_type}; expected one of {', '.join(SQL_TO_PANDAS)}")
    return Column(sql_type, description, nullable, tuple(rules), plausible, max_jump, max_null_rate)


@dataclass(frozen=True)
class FrameCheck:
    """A rule over whole rows (validated by pandera): `test(frame)` is a boolean Series, True = fine."""

    name: str
    error: str
    test: Callable


@dataclass(frozen=True)
class Series:
    """The observation series that jump rules look along: per `group`, ordered by `time`."""

    group: str
    time: str
    max_gap_hours: float


@dataclass(frozen=True)
class TableContract:
    name: str  # "<layer>.<table>", also the asset key's path
    description: str
    columns: dict[str, Column]
    unique: tuple[str, ...] = ()
    frame_checks: tuple[FrameCheck, ...] = ()
    quarantines: bool = False  # a broken value rule sends the row to quarantine
    series: Optional[Series] = None
    partitioned: bool = True  # has the partition column `day`

    @property
    def layer(self) -> str:
        return self.name.split(".")[0]

    @property
    def table(self) -> str:
        return self.name.split(".")[1]


def sql_type(col: Column) -> str:
    return col.sql_type


def sql_literal(value) -> str:
    """A literal from a validated contract (never from data or a request)."""
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    return repr(value)


def ingestion_columns() -> dict[str, Column]:
    return {
        "_source_uri": column("VARCHAR", "File or package resource the row was read from.", False),
        "_source_row": column("BIGINT", "Data row of the row in its source file (1 = first data row, line 2).", False),
        "_ingested_at": column("TIMESTAMPTZ", "When the row was ingested (UTC).", False),
        "_run_id": column("VARCHAR", "Dagster run id that ingested the row.", False),
    }


def partition_day(description: str) -> Column:
    return column("DATE", description, nullable=False)


# --- plausibility over time: isolated jumps ------------------------------------------------------

def isolated_jumps(frame, value: str, max_jump: float, series: Series):
    """Boolean Series over `frame`: True where `value` jumps more than `max_jump` away from both the
    previous and the next non-null observation of its group (each at most `max_gap_hours` away)
    in the same direction: a spike, not a front passing through."""
    import pandas as pd

    group, time = series.group, series.time
    flagged = pd.Series(False, index=frame.index)
    data = frame[[group, time, value]].dropna(subset=[value]).sort_values([group, time])
    if data.empty:
        return flagged
    by_group = data.groupby(group, sort=False)
    previous, following = by_group[value].shift(1), by_group[value].shift(-1)
    gap = pd.Timedelta(hours=series.max_gap_hours)
    near = ((data[time] - by_group[time].shift(1)) <= gap) & ((by_group[time].shift(-1) - data[time]) <= gap)
    rise = (data[value] - previous > max_jump) & (data[value] - following > max_jump)
    fall = (previous - data[value] > max_jump) & (following - data[value] > max_jump)
    flagged.loc[data.index] = (near & (rise | fall)).fillna(False).astype(bool)
    return flagged


# --- the contract compiled for people and for engines ------------------------------------------

def column_rules(col: Column, quarantines: bool = False) -> list[str]:
    """Every rule on a column, in words, with what happens when it is broken."""
    broken = " (else row quarantined)" if quarantines else ""
    rules = [rule.text() + broken for rule in col.rules]
    if col.plausible is not None:
        low, high = col.plausible
        rules.append(f"plausible between {_number(low)} and {_number(high)} (else set to NULL, noted in {NULLED_VALUES})")
    if col.max_jump is not None:
        rules.append(f"no isolated jump over {_number(col.max_jump)} from both neighbouring observations "
                     f"(else set to NULL, noted in {NULLED_VALUES})")
    if col.max_null_rate is not None:
        rules.append(f"at most {col.max_null_rate:.0%} NULL per partition (else WARN)")
    return rules


def ddl(contract: TableContract) -> str:
    """Column definitions for CREATE TABLE, in contract order."""
    return ", ".join(f'"{name}" {col.sql_type}' for name, col in contract.columns.items())


def column_schema(contract: TableContract) -> TableSchema:
    """The contract as Dagster catalog metadata (`dagster/column_schema`)."""
    unique = set(contract.unique)
    return TableSchema(
        columns=[
            TableColumn(
                name=name,
                type=col.sql_type,
                description=col.description,
                constraints=TableColumnConstraints(
                    nullable=col.nullable,
                    other=column_rules(col, contract.quarantines) + (["part of the unique key"] if name in unique else []),
                ),
            )
            for name, col in contract.columns.items()
        ]
    )


def to_pandera(contract: TableContract):
    """The contract as a pandera schema (imports pandera: call it when a check runs)."""
    import pandera.pandas as pa

    columns = {}
    for name, col in contract.columns.items():
        checks = [rule.pandera_check() for rule in col.rules]
        if col.plausible is not None:
            low, high = col.plausible
            checks.append(pa.Check.in_range(low, high, title=PLAUSIBLE, error=f"plausible range {low}..{high}"))
        columns[name] = pa.Column(SQL_TO_PANDAS[col.sql_type], checks=checks or None, nullable=col.nullable,
                                  coerce=True, description=col.description)
    checks = [pa.Check(check.test, name=check.name, error=check.error) for check in contract.frame_checks]
    if contract.series is not None:
        for name, col in contract.columns.items():
            if col.max_jump is not None:
                checks.append(pa.Check(
                    lambda frame, name=name, limit=col.max_jump: ~isolated_jumps(frame, name, limit, contract.series),
                    name=f"{name}_has_no_isolated_jump", title=PLAUSIBLE,
                    error=f"{name} jumps more than {col.max_jump} from both neighbouring observations "
                          f"within {contract.series.max_gap_hours} h",
                ))
    return pa.DataFrameSchema(columns, checks=checks or None, unique=list(contract.unique) or None,
                              name=contract.name, description=contract.description)


def quarantine_contract(raw: TableContract, dataset: str) -> TableContract:
    """Rows of `raw` that could not be cleaned, with the reason and the run that rejected them.

    The raw columns keep their types and nullability but not their value rules: a quarantined row
    is exactly what broke them.
    """
    kept = {name: column(col.sql_type, col.description, col.nullable) for name, col in raw.columns.items()}
    return TableContract(
        name=f"quarantine.{dataset}",
        description=f"Rows of {raw.name} that could not be cleaned, kept as received with the reason.",
        columns={
            **kept,
            "reason": column("VARCHAR", "Why the row was rejected; several reasons are joined by '; '.", False,
                             [Rule("matches", pattern=".")]),
            "quarantine_run_id": column("VARCHAR", "Dagster run id that rejected the row.", False),
        },
        partitioned=raw.partitioned,
    )

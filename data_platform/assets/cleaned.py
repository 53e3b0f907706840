"""Cleaned layer: typed, UTC timestamps, deduplicated; rows that cannot be cleaned are quarantined.

Each cleaned table is one SQL pass over its raw partition range, with its rules read from the
cleaned contract (contracts.py), not written here:

* every row gets a `reason` (empty when it is clean): a required value missing, text that does not
  parse as the contract's type, a value breaking one of the contract's checks, a date that does
  not match the partition. Rows with a reason go to `quarantine.<table>` as received;
* in clean rows, a value breaking a plausibility rule (outside physical limits, or an isolated jump
  away from both neighbouring observations) is set to NULL and noted in `nulled_values`;
* clean rows are deduplicated on the natural key and written to `cleaned.<table>`.

Everything is written in one transaction. Row conservation holds per partition:
raw = cleaned + quarantined + duplicates removed.
"""


import datetime as dt
from dataclasses import dataclass, field

import pandera.pandas as pa
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    MaterializeResult,
    TableColumnDep,
    TableColumnLineage,
    asset,
)
from dagster_duckdb import DuckDBResource

from data_platform import contracts
from data_platform.contracts import NULLED_VALUES, PLAUSIBLE, column_schema, rule_text, sql_literal, violation_sql
from data_platform.metadata import OWNER, combined_version, record_partitions, table_definition_metadata
from data_platform.partitions import daily_partitions, run_days, single_run
from data_platform.warehouse import partition_stats, replace_days, transaction

CODE_VERSION = "2"
ONE_DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class CleaningSpec:
    """What the contract cannot say: how cleaned columns are derived from raw ones.

    A cleaned column not in `derived` is its raw namesake parsed as the contract's SQL type.
    """

    table: str
    raw: pa.DataFrameSchema
    cleaned: pa.DataFrameSchema
    quarantine: pa.DataFrameSchema
    derived: dict[str, str]                   # cleaned column -> SQL over parsed `p_<raw column>` values
    lineage: dict[str, tuple[str, ...]]       # derived column -> raw columns it is computed from
    source_types: dict[str, str]              # raw columns parsed only to derive values or check the date
    source_required: list[str]                # of those, the ones that must be present
    key: list[str]                            # natural key, in cleaned column names
    description: str
    source_ranges: dict[str, tuple] = field(default_factory=dict)  # ranges of raw-only columns

    @property
    def direct(self) -> list[str]:
        """Cleaned columns that are their raw namesake, typed."""
        return [name for name in self.cleaned.columns if name not in self.derived and name not in ("day", NULLED_VALUES)]

    @property
    def parsed(self) -> dict[str, str]:
        types = {name: contracts.sql_type(self.cleaned.columns[name]) for name in self.direct}
        return {**types, **self.source_types}

    @property
    def required(self) -> list[str]:
        return [name for name in self.direct if not self.cleaned.columns[name].nullable] + self.source_required

    @property
    def series(self) -> dict | None:
        """Grouping and time of the observation series that jump rules look along, if any."""
        jumps = [name for name, col in self.cleaned.columns.items() if "max_jump" in col.metadata]
        return {**self.cleaned.metadata["series"], "columns": jumps} if jumps else None

    def sources_of(self, name: str) -> tuple[str, ...]:
        """Raw columns a cleaned column comes from (column lineage)."""
        if name == NULLED_VALUES:
            return tuple(n for n, c in self.cleaned.columns.items() if set(c.metadata) & {"plausible", "max_jump"})
        return self.lineage.get(name, (name,))


def value(name: str) -> str:
    """The staging column holding the final value of cleaned column `name`."""
    return '"day"' if name == "day" else f'"c_{name}"'


def _parse(column: str, sql_type: str) -> str:
    if sql_type == "VARCHAR":
        return f'"{column}" AS "p_{column}"'
    return f'TRY_CAST("{column}" AS {sql_type}) AS "p_{column}"'


def _reasons(spec: CleaningSpec) -> str:
    """One SQL expression: every problem of a row, joined by '; ' (empty string when clean)."""
    parts = [f"CASE WHEN \"{column}\" IS NULL THEN '{column} is missing' END" for column in spec.required]
    for column, sql_type in spec.parsed.items():
        if sql_type != "VARCHAR":
            parts.append(
                f"CASE WHEN \"{column}\" IS NOT NULL AND \"p_{column}\" IS NULL "
                f"THEN '{column}: ' || \"{column}\" || ' is not a valid {sql_type}' END"
            )
    rules = [(name, check) for name in spec.direct for check in spec.cleaned.columns[name].checks
             if check.title != PLAUSIBLE]
    rules += [(name, pa.Check.in_range(low, high)) for name, (low, high) in spec.source_ranges.items()]
    for column, check in rules:
        violated = violation_sql(check, f'"p_{column}"')
        if violated is None:
            raise ValueError(f"{spec.cleaned.name}.{column}: check {check.name} has no SQL form for cleaning")
        parts.append(f"CASE WHEN {violated} THEN '{column}: ' || \"{column}\" || {sql_literal(' not ' + rule_text(check))} END")
    parts.append(
        "CASE WHEN local_date IS NULL AND p_year IS NOT NULL AND p_month IS NOT NULL AND p_day_of_month IS NOT NULL "
        "THEN 'year, month, day ' || year || '-' || month || '-' || day_of_month || ' is not a date' END"
    )
    parts.append(
        "CASE WHEN local_date IS DISTINCT FROM day AND local_date IS NOT NULL "
        "THEN 'row date ' || CAST(local_date AS VARCHAR) || ' does not match partition ' || CAST(day AS VARCHAR) END"
    )
    return "concat_ws('; ', " + ", ".join(parts) + ")"


def _range_values(spec: CleaningSpec) -> str:
    """Cleaned values before jump rules (`r_`), with implausible ones set to NULL and noted (`n_`)."""
    exprs = []
    for name, col in spec.cleaned.columns.items():
        if name in ("day", NULLED_VALUES):
            continue
        raw_value = spec.derived.get(name, f'"p_{name}"')
        if "plausible" in col.metadata:
            low, high = col.metadata["plausible"]
            outside = f"({raw_value} NOT BETWEEN {sql_literal(low)} AND {sql_literal(high)})"
            exprs.append(f'CASE WHEN {outside} THEN NULL ELSE {raw_value} END AS "r_{name}"')
            exprs.append(
                f"CASE WHEN {outside} THEN '{name}=' || \"{name}\" || ' (outside plausible {low}..{high})' END AS \"n_{name}\""
            )
        else:
            exprs.append(f'{raw_value} AS "r_{name}"')
    return ", ".join(exprs)


def _jump_ctes(spec: CleaningSpec) -> list[str]:
    """Per jump-ruled column: the (group, time) of clean observations that are isolated jumps."""
    series = spec.series
    group, time, gap = f'"r_{series["group"]}"', f'"r_{series["time"]}"', series["max_gap_hours"]
    ctes = []
    for name in series["columns"]:
        limit = sql_literal(spec.cleaned.columns[name].metadata["max_jump"])
        ctes.append(f"""
        jumps_{name} AS (
            SELECT g, t FROM (
                SELECT g, t, v, lag(v) OVER w AS pv, lead(v) OVER w AS nv, lag(t) OVER w AS pt, lead(t) OVER w AS nt
                FROM (SELECT {group} AS g, {time} AS t, any_value("r_{name}") AS v FROM valued
                      WHERE reason = '' AND "r_{name}" IS NOT NULL GROUP BY ALL)
                WINDOW w AS (PARTITION BY g ORDER BY t)
            )
            WHERE t - pt <= INTERVAL {gap} HOUR AND nt - t <= INTERVAL {gap} HOUR
              AND ((v - pv > {limit} AND v - nv > {limit}) OR (pv - v > {limit} AND nv - v > {limit}))
        )""")
    return ctes


def _final_values(spec: CleaningSpec) -> tuple[str, str]:
    """The `c_` (final) value of every cleaned column and the joins to the jump tables."""
    series = spec.series
    jumps = series["columns"] if series else []
    exprs, notes, joins = [], [], []
    for name, col in spec.cleaned.columns.items():
        if name in ("day", NULLED_VALUES):
            continue
        if "plausible" in col.metadata:
            notes.append(f'"n_{name}"')
        if name in jumps:
            limit = col.metadata["max_jump"]
            exprs.append(f'CASE WHEN jumps_{name}.t IS NOT NULL THEN NULL ELSE "r_{name}" END AS "c_{name}"')
            notes.append(
                f"CASE WHEN jumps_{name}.t IS NOT NULL THEN '{name}=' || \"{name}\" || "
                f"' (isolated jump over {limit} from both neighbouring observations)' END"
            )
            joins.append(
                f'LEFT JOIN jumps_{name} ON valued.reason = \'\' AND jumps_{name}.g = valued."r_{series["group"]}" '
                f'AND jumps_{name}.t = valued."r_{series["time"]}"'
            )
        else:
            exprs.append(f'"r_{name}" AS "c_{name}"')
    if NULLED_VALUES in spec.cleaned.columns:
        exprs.append(f"NULLIF(concat_ws('; ', {', '.join(notes)}), '') AS \"c_{NULLED_VALUES}\"")
    return ", ".join(exprs), " ".join(joins)


def staging_query(spec: CleaningSpec) -> str:
    """Raw rows of the range with cleaned values, the rejection reason and a duplicate rank.

    Parameters: `staging_params(first, last)`. Jump rules look one day beyond the range for
    neighbouring observations, so a partition's result does not depend on the run's range.
    """
    parsed = ", ".join(_parse(column, sql_type) for column, sql_type in spec.parsed.items())
    final_values, jump_joins = _final_values(spec)
    jump_ctes = "".join("," + cte for cte in _jump_ctes(spec)) if spec.series else ""
    key = ", ".join(value(name) for name in spec.key)
    return f"""
        WITH parsed AS (
            SELECT *, {parsed},
                   TRY_CAST(printf('%04d-%02d-%02d', TRY_CAST(year AS INTEGER), TRY_CAST(month AS INTEGER),
                                   TRY_CAST(day_of_month AS INTEGER)) AS DATE) AS local_date
            FROM {spec.raw.name} WHERE day BETWEEN ? AND ?
        ),
        judged AS (SELECT *, {_reasons(spec)} AS reason FROM parsed),
        valued AS (SELECT *, {_range_values(spec)} FROM judged){jump_ctes},
        final AS (
            SELECT valued.*, {final_values} FROM valued {jump_joins}
            WHERE valued.day BETWEEN ? AND ?
        )
        SELECT *, CASE WHEN reason = '' THEN
                    row_number() OVER (PARTITION BY reason = '', {key} ORDER BY _source_uri, _source_row)
                  END AS duplicate_rank
        FROM final
    """


def staging_params(spec: CleaningSpec, first: dt.date, last: dt.date) -> list:
    margin = ONE_DAY if spec.series else dt.timedelta(0)
    return [first - margin, last + margin, first, last]


FLIGHTS = CleaningSpec(
    table="flights",
    raw=contracts.RAW_FLIGHTS,
    cleaned=contracts.CLEANED_FLIGHTS,
    quarantine=contracts.QUARANTINE_FLIGHTS,
    derived={
        "sched_dep_utc": "p_time_hour + p_minute * INTERVAL 1 MINUTE",
        "cancelled": "p_dep_time IS NULL",
        "diverted": "p_dep_time IS NOT NULL AND p_arr_delay IS NULL",
    },
    lineage={
        "sched_dep_utc": ("time_hour", "minute"),
        "cancelled": ("dep_time",),
        "diverted": ("dep_time", "arr_delay"),
    },
    source_types={"year": "INTEGER", "month": "INTEGER", "day_of_month": "INTEGER", "time_hour": "TIMESTAMPTZ"},
    source_required=["year", "month", "day_of_month", "time_hour"],
    key=["carrier", "flight", "origin", "day"],
    description=(
        "Typed flights: scheduled departure in UTC (`sched_dep_utc`), cancelled and diverted flags, "
        "deduplicated on (carrier, flight, origin, day). Rows that cannot be typed or break a rule of "
        "the contract go to quarantine.flights with the reason."
    ),
)

WEATHER = CleaningSpec(
    table="weather",
    raw=contracts.RAW_WEATHER,
    cleaned=contracts.CLEANED_WEATHER,
    quarantine=contracts.QUARANTINE_WEATHER,
    derived={"observed_at": "p_time_hour"},
    lineage={"observed_at": ("time_hour",)},
    source_types={"year": "INTEGER", "month": "INTEGER", "day_of_month": "INTEGER", "hour": "INTEGER",
                  "time_hour": "TIMESTAMPTZ"},
    source_required=["year", "month", "day_of_month", "time_hour"],
    source_ranges={"hour": (0, 23)},
    key=["origin", "observed_at"],
    description=(
        "Typed hourly weather per origin with the UTC observation time (`observed_at`), "
        "deduplicated on (origin, observed_at). Untypable rows go to quarantine.weather; physically "
        "implausible values (the 1048 mph wind, the 13 °F spike in May) are set to NULL and noted in "
        "`nulled_values`."
    ),
)


def clean_range(conn, spec: CleaningSpec, first: dt.date, last: dt.date, run_id: str) -> dict[str, dict]:
    """Clean days first..last in one transaction; returns per-day counts by outcome."""
    raw_columns = ", ".join(f'"{name}"' for name in spec.raw.columns)
    cleaned_columns = ", ".join(f'{value(name)} AS "{name}"' for name in spec.cleaned.columns)
    nulled = (
        f"sum(len(string_split(c_{NULLED_VALUES}, '; '))) FILTER (WHERE duplicate_rank = 1)"
        if NULLED_VALUES in spec.cleaned.columns else "0"
    )
    with transaction(conn):
        conn.execute("DROP TABLE IF EXISTS staged")
        conn.execute(f"CREATE TEMP TABLE staged AS {staging_query(spec)}", staging_params(spec, first, last))
        replace_days(conn, spec.cleaned, f"SELECT {cleaned_columns} FROM staged WHERE duplicate_rank = 1", [], first, last)
        replace_days(
            conn, spec.quarantine,
            f"SELECT {raw_columns}, reason, ? AS quarantine_run_id FROM staged WHERE reason <> ''",
            [run_id], first, last,
        )
        counts = conn.execute(
            f"""
            SELECT day, count(*),
                   count(*) FILTER (WHERE reason <> ''),
                   count(*) FILTER (WHERE duplicate_rank > 1),
                   coalesce({nulled}, 0)
            FROM staged GROUP BY day
            """
        ).fetchall()
        conn.execute("DROP TABLE staged")
    outcome = {"raw_rows": {}, "quarantined_rows": {}, "duplicates_removed": {}}
    if NULLED_VALUES in spec.cleaned.columns:
        outcome["values_nulled"] = {}
    for day, raw_rows, quarantined, duplicates, nulled_count in counts:
        outcome["raw_rows"][day] = raw_rows
        outcome["quarantined_rows"][day] = quarantined
        outcome["duplicates_removed"][day] = duplicates
        if "values_nulled" in outcome:
            outcome["values_nulled"][day] = int(nulled_count)
    return outcome


def column_lineage(spec: CleaningSpec) -> TableColumnLineage:
    """`dagster/column_lineage`: the raw columns each cleaned column is computed from."""
    raw_key = AssetKey(["raw", spec.table])
    return TableColumnLineage(
        deps_by_column={
            name: [TableColumnDep(asset_key=raw_key, column_name=source) for source in spec.sources_of(name)]
            for name in spec.cleaned.columns
        }
    )


def _cleaned_asset(spec: CleaningSpec) -> AssetsDefinition:
    lineage = column_lineage(spec)

    @asset(
        key=["cleaned", spec.table],
        group_name="cleaned",
        description=spec.description,
        owners=[OWNER],
        kinds={"duckdb", "sql"},
        code_version=CODE_VERSION,
        partitions_def=daily_partitions,
        backfill_policy=single_run,
        pool="duckdb",
        # The reference tables the flights refer to: a backfill materializes them before these
        # partitions, so the reference checks never run ahead of them.
        deps=[AssetKey(["raw", spec.table]), *(AssetKey(["raw", table]) for table in REFERENCES.get(spec.table, ()))],
        metadata={
            **table_definition_metadata(spec.cleaned),
            "dagster/column_lineage": lineage,
            "quarantine_table": spec.quarantine.name,
            "quarantine_column_schema": column_schema(spec.quarantine),
        },
    )
    def cleaned(context: AssetExecutionContext, warehouse: DuckDBResource) -> MaterializeResult:
        first, last = run_days(context)
        with warehouse.get_connection() as conn:
            outcome = clean_range(conn, spec, first, last, context.run.run_id)
            stats = partition_stats(conn, spec.cleaned, first, last)
        record_partitions(context, stats, **outcome)
        totals = {name: sum(per_day.values()) for name, per_day in outcome.items()}
        cleaned_rows = sum(s.rows for s in stats.values())
        conserved = totals["raw_rows"] == cleaned_rows + totals["quarantined_rows"] + totals["duplicates_removed"]
        context.log.info(
            f"cleaned.{spec.table} {first}..{last}: {totals['raw_rows']:,} raw = {cleaned_rows:,} cleaned "
            f"+ {totals['quarantined_rows']:,} quarantined + {totals['duplicates_removed']:,} duplicates"
        )
        return MaterializeResult(
            metadata={
                **{f"{name}_in_run": total for name, total in totals.items()},
                "cleaned_rows_in_run": cleaned_rows,
                "rows_conserved": conserved,
                "dagster/column_lineage": lineage,
            },
            data_version=combined_version(stats),
        )

    return cleaned


# Reference tables each cleaned table's codes point into (the contract's relationships, later).
REFERENCES = {"flights": ("airlines", "airports", "planes")}

CLEANING_SPECS = {spec.table: spec for spec in (FLIGHTS, WEATHER)}
cleaned_assets = [_cleaned_asset(spec) for spec in CLEANING_SPECS.values()]

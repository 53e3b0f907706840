"""Cleaned layer: typed, UTC timestamps, deduplicated; rows that cannot be cleaned are quarantined.

Each cleaned table is one SQL pass over its raw partition range: every row gets a `reason`
(empty when it is clean). Clean rows are deduplicated on the natural key and written to
`cleaned.<table>`, the rest go to `quarantine.<table>` with the reason, all in one transaction.
Row conservation holds per partition: raw = cleaned + quarantined + duplicates removed.
"""


import datetime as dt
from dataclasses import dataclass

import pandera.pandas as pa
from dagster import AssetExecutionContext, AssetKey, AssetsDefinition, MaterializeResult, asset
from data_platform.warehouse import WarehouseResource

from data_platform import contracts
from data_platform.metadata import OWNER, combined_version, record_partitions, table_definition_metadata
from data_platform.partitions import daily_partitions, run_days, single_run
from data_platform.warehouse import partition_stats, replace_days, transaction

CODE_VERSION = "1"


@dataclass(frozen=True)
class CleaningSpec:
    table: str
    raw: pa.DataFrameSchema
    cleaned: pa.DataFrameSchema
    quarantine: pa.DataFrameSchema
    parsed: dict[str, str]          # raw column -> SQL type it must parse as
    required: list[str]             # raw columns that must be present
    ranges: dict[str, tuple]        # raw column -> (low, high) allowed after parsing
    key: list[str]                  # natural key, in cleaned column names
    select: str                     # cleaned columns, from the parsed `p_<column>` values
    description: str


def _parse(column: str, sql_type: str) -> str:
    return f'TRY_CAST("{column}" AS {sql_type}) AS "p_{column}"'


def _reasons(spec: CleaningSpec) -> str:
    """One SQL expression: every problem of a row, joined by '; ' (empty string when clean)."""
    parts = []
    for column in spec.required:
        parts.append(f"CASE WHEN \"{column}\" IS NULL THEN '{column} is missing' END")
    for column, sql_type in spec.parsed.items():
        parts.append(
            f"CASE WHEN \"{column}\" IS NOT NULL AND \"p_{column}\" IS NULL "
            f"THEN '{column}: ' || \"{column}\" || ' is not a valid {sql_type}' END"
        )
    for column, (low, high) in spec.ranges.items():
        parts.append(
            f"CASE WHEN \"p_{column}\" NOT BETWEEN {low} AND {high} "
            f"THEN '{column}: ' || \"{column}\" || ' outside {low}..{high}' END"
        )
    parts.append(
        "CASE WHEN local_date IS DISTINCT FROM day AND local_date IS NOT NULL "
        "THEN 'row date ' || CAST(local_date AS VARCHAR) || ' does not match partition ' || CAST(day AS VARCHAR) END"
    )
    return "concat_ws('; ', " + ", ".join(parts) + ")"


def staging_query(spec: CleaningSpec) -> str:
    """Raw rows of the range with parsed values, the rejection reason and a duplicate rank."""
    parsed = ", ".join(_parse(column, sql_type) for column, sql_type in spec.parsed.items())
    key = ", ".join(spec.key)
    return f"""
        WITH parsed AS (
            SELECT *, {parsed},
                   TRY_CAST(printf('%04d-%02d-%02d', TRY_CAST(year AS INTEGER), TRY_CAST(month AS INTEGER),
                                   TRY_CAST(day_of_month AS INTEGER)) AS DATE) AS local_date
            FROM {spec.raw.name} WHERE day BETWEEN ? AND ?
        ),
        judged AS (SELECT *, {_reasons(spec)} AS reason FROM parsed),
        shaped AS (SELECT judged.*, {spec.select} FROM judged)
        SELECT *, CASE WHEN reason = '' THEN
                    row_number() OVER (PARTITION BY reason = '', {key} ORDER BY _source_uri, _source_row)
                  END AS duplicate_rank
        FROM shaped
    """


FLIGHTS = CleaningSpec(
    table="flights",
    raw=contracts.RAW_FLIGHTS,
    cleaned=contracts.CLEANED_FLIGHTS,
    quarantine=contracts.QUARANTINE_FLIGHTS,
    parsed={
        "year": "INTEGER", "month": "INTEGER", "day_of_month": "INTEGER", "dep_time": "INTEGER",
        "sched_dep_time": "INTEGER", "dep_delay": "DOUBLE", "arr_time": "INTEGER",
        "sched_arr_time": "INTEGER", "arr_delay": "DOUBLE", "flight": "INTEGER", "air_time": "DOUBLE",
        "distance": "DOUBLE", "hour": "INTEGER", "minute": "INTEGER", "time_hour": "TIMESTAMPTZ",
    },
    required=["year", "month", "day_of_month", "carrier", "flight", "origin", "dest",
              "sched_dep_time", "distance", "hour", "minute", "time_hour"],
    ranges={
        "month": (1, 12), "day_of_month": (1, 31), "hour": (0, 23), "minute": (0, 59),
        "dep_time": (1, 2400), "arr_time": (1, 2400), "sched_dep_time": (1, 2359),
        "sched_arr_time": (1, 2359), "distance": (1, 6000), "air_time": (1, 1000),
        "dep_delay": (-120, 2400), "arr_delay": (-180, 2400),
    },
    key=["carrier", "p_flight", "origin", "day"],
    select="""
        p_time_hour + p_minute * INTERVAL 1 MINUTE AS sched_dep_utc,
        p_dep_time IS NULL AS cancelled,
        p_dep_time IS NOT NULL AND p_arr_delay IS NULL AS diverted
    """,
    description=(
        "Typed flights: scheduled departure in UTC (`sched_dep_utc`), cancelled and diverted flags, "
        "deduplicated on (carrier, flight, origin, day). Rows that cannot be typed or fail a range "
        "go to quarantine.flights with the reason."
    ),
)

WEATHER = CleaningSpec(
    table="weather",
    raw=contracts.RAW_WEATHER,
    cleaned=contracts.CLEANED_WEATHER,
    quarantine=contracts.QUARANTINE_WEATHER,
    parsed={
        "year": "INTEGER", "month": "INTEGER", "day_of_month": "INTEGER", "hour": "INTEGER",
        "temp": "DOUBLE", "dewp": "DOUBLE", "humid": "DOUBLE", "wind_dir": "DOUBLE",
        "wind_speed": "DOUBLE", "wind_gust": "DOUBLE", "precip": "DOUBLE", "pressure": "DOUBLE",
        "visib": "DOUBLE", "time_hour": "TIMESTAMPTZ",
    },
    required=["origin", "year", "month", "day_of_month", "time_hour"],
    ranges={
        "month": (1, 12), "day_of_month": (1, 31), "hour": (0, 23), "humid": (0, 100),
        "wind_dir": (0, 360), "precip": (0, 10), "visib": (0, 100),
    },
    key=["origin", "p_time_hour"],
    select="p_time_hour AS observed_at",
    description=(
        "Typed hourly weather per origin with the UTC observation time (`observed_at`), "
        "deduplicated on (origin, observed_at). Untypable rows go to quarantine.weather."
    ),
)


def _cleaned_columns(spec: CleaningSpec) -> str:
    """Cleaned contract columns from the staging table: parsed value if any, else the raw one."""
    staged = set(spec.parsed)
    names = []
    for name in spec.cleaned.columns:
        if name in staged:
            names.append(f'"p_{name}" AS "{name}"')
        else:
            names.append(f'"{name}"')
    return ", ".join(names)


def clean_range(conn, spec: CleaningSpec, first: dt.date, last: dt.date, run_id: str) -> dict[str, dict]:
    """Clean days first..last in one transaction; returns per-day counts by outcome."""
    raw_columns = ", ".join(f'"{name}"' for name in spec.raw.columns)
    with transaction(conn):
        conn.execute("DROP TABLE IF EXISTS staged")
        conn.execute(f"CREATE TEMP TABLE staged AS {staging_query(spec)}", [first, last])
        replace_days(conn, spec.cleaned, f"SELECT {_cleaned_columns(spec)} FROM staged WHERE duplicate_rank = 1", [], first, last)
        replace_days(
            conn, spec.quarantine,
            f"SELECT {raw_columns}, reason, ? AS quarantine_run_id FROM staged WHERE reason <> ''",
            [run_id], first, last,
        )
        counts = conn.execute(
            """
            SELECT day, count(*),
                   count(*) FILTER (WHERE reason <> ''),
                   count(*) FILTER (WHERE duplicate_rank > 1)
            FROM staged GROUP BY day
            """
        ).fetchall()
        conn.execute("DROP TABLE staged")
    outcome = {"raw_rows": {}, "quarantined_rows": {}, "duplicates_removed": {}}
    for day, raw_rows, quarantined, duplicates in counts:
        outcome["raw_rows"][day] = raw_rows
        outcome["quarantined_rows"][day] = quarantined
        outcome["duplicates_removed"][day] = duplicates
    return outcome


def _cleaned_asset(spec: CleaningSpec) -> AssetsDefinition:
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
        deps=[AssetKey(["raw", spec.table])],
        metadata=table_definition_metadata(spec.cleaned),
    )
    def cleaned(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
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
                "raw_rows_in_run": totals["raw_rows"],
                "cleaned_rows_in_run": cleaned_rows,
                "quarantined_rows_in_run": totals["quarantined_rows"],
                "duplicates_removed_in_run": totals["duplicates_removed"],
                "rows_conserved": conserved,
            },
            data_version=combined_version(stats),
        )

    return cleaned


CLEANING_SPECS = {spec.table: spec for spec in (FLIGHTS, WEATHER)}
cleaned_assets = [_cleaned_asset(spec) for spec in CLEANING_SPECS.values()]

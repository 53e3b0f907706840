"""Raw layer: what the source sent, as text, plus ingestion bookkeeping."""


import datetime as dt

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    Backoff,
    Failure,
    Jitter,
    MaterializeResult,
    RetryPolicy,
    asset,
)
from data_platform.warehouse import WarehouseResource

from data_platform.metadata import OWNER, combined_version, record_partitions, table_definition_metadata
from data_platform.partitions import daily_partitions, run_days, single_run
from data_platform.sources import DAILY_TABLES, RAW_CONTRACTS, SourceError, SourceResource
from data_platform.warehouse import partition_stats, replace_days, replace_table, table_stats, transaction

# Source reads can meet a drop still being written or a flaky mount: retry with backoff and jitter.
SOURCE_RETRY = RetryPolicy(max_retries=3, delay=2, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)
CODE_VERSION = "1"

DESCRIPTIONS = {
    "flights": "NYC departures as the source sent them, all columns as text, one partition per local flight date.",
    "weather": "Hourly weather at EWR, JFK and LGA as the source sent it, one partition per local date.",
    "airports": "Airport reference table (FAA codes, names, locations, time zones) as sent.",
    "airlines": "Carrier code to carrier name, as sent.",
    "planes": "Plane registry (tail number, year, model, seats, engines) as sent.",
}


def ingest_days(conn, source: SourceResource, table: str, first: dt.date, last: dt.date, run_id: str) -> int:
    """Replace days first..last of raw.<table> with what the source has; returns rows written."""
    frame = source.read_daily(table, first, last)
    frame = frame.assign(_ingested_at=pd.Timestamp.now(tz="UTC"), _run_id=run_id)
    conn.register("incoming", frame)
    with transaction(conn):
        replace_days(conn, RAW_CONTRACTS[table], "SELECT * FROM incoming", [], first, last)
    conn.unregister("incoming")
    return len(frame)


def _failing_without_retry(error: SourceError) -> Failure:
    # Retrying cannot fix a bad file; the message names it and what is wrong.
    return Failure(description=str(error), allow_retries=False)


def _raw_asset_args(table: str) -> dict:
    return dict(
        key=["raw", table],
        group_name="raw",
        description=DESCRIPTIONS[table],
        owners=[OWNER],
        kinds={"duckdb", "csv"},
        code_version=CODE_VERSION,
        retry_policy=SOURCE_RETRY,
        pool="duckdb",
        metadata=table_definition_metadata(RAW_CONTRACTS[table]),
    )


def _raw_daily_asset(table: str) -> AssetsDefinition:
    contract = RAW_CONTRACTS[table]

    @asset(**_raw_asset_args(table), partitions_def=daily_partitions, backfill_policy=single_run)
    def raw_daily(context: AssetExecutionContext, warehouse: WarehouseResource, source: SourceResource) -> MaterializeResult:
        first, last = run_days(context)
        context.log.info(f"reading {table} {first}..{last} from {source.describe()}")
        with warehouse.get_connection() as conn:
            try:
                rows = ingest_days(conn, source, table, first, last, context.run.run_id)
            except SourceError as error:
                raise _failing_without_retry(error) from error
            stats = partition_stats(conn, contract, first, last)
        record_partitions(context, stats)
        context.log.info(f"wrote {rows:,} rows of raw.{table} for {len(stats)} day(s)")
        return MaterializeResult(
            metadata={"rows_in_run": rows, "source": source.describe()},
            data_version=combined_version(stats),
        )

    return raw_daily


def _raw_reference_asset(table: str) -> AssetsDefinition:
    contract = RAW_CONTRACTS[table]

    @asset(**_raw_asset_args(table))
    def raw_reference(context: AssetExecutionContext, warehouse: WarehouseResource, source: SourceResource) -> MaterializeResult:
        try:
            frame = source.read_reference(table)
        except SourceError as error:
            raise _failing_without_retry(error) from error
        frame = frame.assign(_ingested_at=pd.Timestamp.now(tz="UTC"), _run_id=context.run.run_id)
        with warehouse.get_connection() as conn:
            conn.register("incoming", frame)
            with transaction(conn):
                replace_table(conn, contract, "SELECT * FROM incoming")
            stats = table_stats(conn, contract)
        return MaterializeResult(
            metadata={"dagster/row_count": stats.rows, "source": source.describe()},
            data_version=combined_version({dt.date.min: stats}),
        )

    return raw_reference


raw_assets = [_raw_daily_asset(table) for table in DAILY_TABLES] + [
    _raw_reference_asset(table) for table in RAW_CONTRACTS if table not in DAILY_TABLES
]

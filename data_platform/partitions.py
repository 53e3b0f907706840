"""The daily partitions shared by every daily asset, and helpers to turn a run's range into days."""

from __future__ import annotations

import datetime as dt

from dagster import AssetExecutionContext, BackfillPolicy, DailyPartitionsDefinition

FIRST_DAY = dt.date(2013, 1, 1)
LAST_DAY = dt.date(2013, 12, 31)

# Partition keys are the local flight dates the source publishes (its year, month and day columns).
daily_partitions = DailyPartitionsDefinition(
    start_date=FIRST_DAY.isoformat(),
    end_date=(LAST_DAY + dt.timedelta(days=1)).isoformat(),
    timezone="UTC",
)

# One run covers a whole backfill range: Dagster's per-run overhead is seconds.
single_run = BackfillPolicy.single_run()


def run_days(context: AssetExecutionContext) -> tuple[dt.date, dt.date]:
    """First and last day (inclusive) of the partition range this run materializes."""
    window = context.partition_time_window
    return window.start.date(), window.end.date() - dt.timedelta(days=1)


def days_between(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]

"""Partitions: each dataset's from its contract (the ML graph takes those of the datasets it reads),
and helpers to turn a run's range into days.

Partition keys are dates. Every daily partitions definition runs in UTC so that partition mappings
between datasets and the ML graph line up day for day; a contract's time zone says how a row's date
is reckoned (`ingest.partition_day_sql`), not when Dagster's window opens.
"""

from __future__ import annotations

import datetime as dt
import functools

from dagster import AssetExecutionContext, BackfillPolicy, DailyPartitionsDefinition

# One run covers a whole backfill range: Dagster's per-run overhead is seconds.
single_run = BackfillPolicy.single_run()


@functools.lru_cache(maxsize=None)
def daily_partitions(start: dt.date, end: dt.date | None) -> DailyPartitionsDefinition:
    # Cached: datasets (and the ML graph that follows them) with the same calendar share one object,
    # so the partition mappings between them are identities.
    if end is None:
        # A live feed: partitions run up to today (today's file may already have landed).
        return DailyPartitionsDefinition(start_date=start.isoformat(), timezone="UTC", end_offset=1)
    return DailyPartitionsDefinition(
        start_date=start.isoformat(), end_date=(end + dt.timedelta(days=1)).isoformat(), timezone="UTC"
    )


def dataset_partitions(dataset) -> DailyPartitionsDefinition | None:
    """The partitions a dataset's contract declares; None for a reference table."""
    part = dataset.partitioning
    return daily_partitions(part.start, part.end) if part else None


def first_partition_day(partitions_def: DailyPartitionsDefinition) -> dt.date:
    return partitions_def.start.date()


def last_partition_day(dataset) -> dt.date:
    """The newest partition a dataset can have: its contract's end, or today for a live feed."""
    part = dataset.partitioning
    return part.end if part.end else dt.datetime.now(dt.timezone.utc).date()


def run_days(context: AssetExecutionContext) -> tuple[dt.date, dt.date]:
    """First and last day (inclusive) of the partition range this run materializes."""
    window = context.partition_time_window
    return window.start.date(), window.end.date() - dt.timedelta(days=1)


def days_between(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def day_chunks(first: dt.date, last: dt.date, size: int) -> list[tuple[dt.date, dt.date]]:
    """first..last as consecutive ranges of at most `size` days."""
    days = days_between(first, last)
    return [(days[i], days[min(i + size, len(days)) - 1]) for i in range(0, len(days), size)]

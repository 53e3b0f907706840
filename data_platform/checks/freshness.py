"""Freshness: a `FreshnessPolicy` on every asset and partition-aware checks on every daily asset.

What "fresh" means for a source that replays 2013
-------------------------------------------------
A wall clock says every 2013 partition is years late, which is true and useless. Freshness here is
measured against the *source*, not the calendar:

* The source's high-water mark is the newest partition it has (`SourceResource.high_water`): the
  newest valid `<landing>/<name>/<YYYY-MM-DD>.csv|.parquet` of a landing folder, or the last day a
  single-file source's contract declares (2013-12-31 for the bundled year). It became available
  when that file was written (its modification time; for a package file, when it was installed).
* A live dataset (no end date in its contract) with an ODCS `latency` SLA must also deliver: once a
  day is over and the latency has passed, that day is due from the source even if no file came.
* A daily asset is fresh when it has materialized that newest partition (for a landing source: after
  the file was written). Its deadline is the moment the partition became available plus the lag
  its layer is allowed (the contract's `freshnessLagHours` for raw and cleaned, `PARTITION_LAG` for
  the layers the platform computes); past the deadline without it, the check fails with WARN
  and its metadata says which partition was expected, by which deadline, how late it is and how far
  behind the newest materialized partition is. A downstream asset waits for the oldest high-water
  mark among the daily source tables it is built from.
* `FreshnessPolicy` (Dagster's, evaluated by the daemon; it ignores partitions) says how long an
  asset may go without any materialization. With a landing directory (a live daily feed) the windows
  follow the daily cadence per layer (`LIVE_WINDOWS`). The bundled 2013 year never gets a new
  partition, so a daily window could only turn red a day after the last backfill: with the bundled
  source the windows ask for a replay within the last week (warn) or month (fail) instead
  (`REPLAY_WINDOWS`).
"""

import datetime as dt
import warnings
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetChecksDefinition,
    AssetKey,
    AssetRecordsFilter,
    AssetsDefinition,
    AssetSpec,
    DefaultSensorStatus,
    FreshnessPolicy,
    MetadataValue,
    SensorDefinition,
    SupersessionWarning,
    TimeWindowPartitionsDefinition,
    build_sensor_for_freshness_checks,
    multi_asset_check,
)

from data_platform.datasets import registry
from data_platform.datasets.model import Dataset
from data_platform.ingest import HighWater, SourceResource

CHECK_NAME = "newest_source_partition_on_time"
SENSOR_NAME = "freshness_checks_sensor"
# Read by Dagster's freshness-check sensor: a passed check is evaluated again after this time.
FRESH_UNTIL = "dagster/fresh_until_timestamp"
# A fresh asset is checked again after this long: the source may publish a newer partition.
RECHECK_AFTER = dt.timedelta(hours=1)

# How long after the source's newest partition became available each layer must have it.
PARTITION_LAG = {
    "raw": dt.timedelta(hours=1),
    "cleaned": dt.timedelta(hours=2),
    "features": dt.timedelta(hours=3),
    "ml": dt.timedelta(hours=4),
    "monitoring": dt.timedelta(hours=4),
}
DEFAULT_LAG = dt.timedelta(hours=4)

HOUR, DAY = dt.timedelta(hours=1), dt.timedelta(days=1)
# (warn, fail) windows since the last materialization of any partition.
LIVE_WINDOWS = {
    "daily": {"raw": (DAY, DAY + 2 * HOUR), "cleaned": (DAY + HOUR, DAY + 3 * HOUR),
              "features": (DAY + 2 * HOUR, DAY + 4 * HOUR), "ml": (DAY + 3 * HOUR, DAY + 6 * HOUR),
              "monitoring": (DAY + 3 * HOUR, DAY + 6 * HOUR)},
    # Reference tables change rarely; the model is retrained on drift, so a month is the ceiling.
    "unpartitioned": {"raw": (7 * DAY, 8 * DAY), "ml": (14 * DAY, 30 * DAY)},
}
REPLAY_WINDOWS = (7 * DAY, 30 * DAY)
FALLBACK_WINDOWS = (7 * DAY, 8 * DAY)


def lag_of(key: AssetKey) -> dt.timedelta:
    """How long after the source made a partition available this asset must have it."""
    layer = layer_of(key)
    dataset = registry().get(key.path[-1]) if layer in ("raw", "cleaned") else None
    if dataset is not None and layer in dataset.freshness_lag_hours:
        return dt.timedelta(hours=dataset.freshness_lag_hours[layer])
    return PARTITION_LAG.get(layer, DEFAULT_LAG)


def is_daily(spec: AssetSpec) -> bool:
    return isinstance(spec.partitions_def, TimeWindowPartitionsDefinition)


def layer_of(key: AssetKey) -> str:
    return key.path[0]


def freshness_policy(spec: AssetSpec, live_source: bool) -> FreshnessPolicy:
    """The policy for one asset: by cadence and layer for a live feed, a replay window otherwise.

    A dataset's own assets are live when its contract reads a landing folder or has no end date
    (its ODCS latency decides when a partition is due: see `ingest.HighWater` and the check).
    """
    dataset = registry().get(spec.key.path[-1]) if layer_of(spec.key) in ("raw", "cleaned") else None
    if dataset is not None:
        if not _is_live(dataset, live_source):
            warn, fail = REPLAY_WINDOWS
        else:
            warn, fail = LIVE_WINDOWS["daily" if dataset.partitioned else "unpartitioned"]["raw"]
            if dataset.partitioned and layer_of(spec.key) == "cleaned":
                warn, fail = LIVE_WINDOWS["daily"]["cleaned"]
    elif live_source:
        by_layer = LIVE_WINDOWS["daily" if is_daily(spec) else "unpartitioned"]
        warn, fail = by_layer.get(layer_of(spec.key), FALLBACK_WINDOWS)
    else:
        warn, fail = REPLAY_WINDOWS
    return FreshnessPolicy.time_window(fail_window=fail, warn_window=warn)


def _is_live(dataset: Dataset, landing_dir_set: bool) -> bool:
    if dataset.source.type == "landing" or (dataset.source.type == "package" and landing_dir_set):
        return True
    return dataset.partitioned and dataset.partitioning.end is None


def with_freshness_policy(spec: AssetSpec, live_source: bool) -> AssetSpec:
    return spec.replace_attributes(freshness_policy=freshness_policy(spec, live_source))


# --- the source's high-water mark ------------------------------------------------------------


def high_water(source: SourceResource, name: str) -> Optional[HighWater]:
    """The newest partition `source` has for a dataset, or None when it has none."""
    return source.high_water(registry()[name])


def combined_high_water(source: SourceResource, tables: Iterable[str]) -> Optional[HighWater]:
    """The high-water mark of an asset built from several tables: the oldest newest partition
    (a day is complete only when every table has it), available when the last of them arrived."""
    marks = [high_water(source, table) for table in sorted(tables)]
    if not marks or any(mark is None for mark in marks):
        return None
    oldest = min(marks, key=lambda mark: mark.day)
    latest = max(marks, key=lambda mark: mark.available_at)
    # a day is owed by every table only from the latest of their first partitions
    return HighWater(oldest.day, latest.available_at, oldest.uri, oldest.republishable,
                     start=max(mark.start for mark in marks))


# --- which source tables each asset is built from -----------------------------------------------


def source_tables_by_asset(specs: Sequence[AssetSpec]) -> dict[AssetKey, frozenset[str]]:
    """For every asset, the partitioned datasets upstream of it (raw/flights -> {"flights"})."""
    deps = {spec.key: [dep.asset_key for dep in spec.deps] for spec in specs}
    roots = {AssetKey(["raw", d.name]): d.name for d in registry().values() if d.partitioned}
    found: dict[AssetKey, frozenset[str]] = {}

    def visit(key: AssetKey, path: tuple) -> frozenset[str]:
        if key in found:
            return found[key]
        tables = {roots[key]} if key in roots else set()
        for upstream in deps.get(key, []):
            if upstream not in path:
                tables |= visit(upstream, path + (key,))
        found[key] = frozenset(tables)
        return found[key]

    for spec in specs:
        visit(spec.key, ())
    return found


# --- the check ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    passed: bool
    description: str
    metadata: dict


def judge(
    key: AssetKey,
    mark: Optional[HighWater],
    materialized: set[str],
    expected_materialized_at: Optional[dt.datetime],
    now: dt.datetime,
) -> Verdict:
    """Compare an asset's partitions with its source's high-water mark at `now`.

    `materialized` holds the asset's materialized partition keys; `expected_materialized_at` is when
    the high-water partition was last materialized (None if never).
    """
    layer = layer_of(key)
    lag = lag_of(key)
    if mark is None:
        return Verdict(True, "The source has no partition yet: nothing can be late.",
                       {"expected_partition": "none", FRESH_UNTIL: MetadataValue.timestamp(now + RECHECK_AFTER)})
    expected = mark.day.isoformat()
    deadline = mark.available_at + lag
    days = sorted(materialized)
    newest = days[-1] if days else None
    stale_copy = (
        mark.republishable and expected_materialized_at is not None and expected_materialized_at < mark.available_at
    )
    present = expected in materialized and not stale_copy
    behind = max(0, (mark.day - dt.date.fromisoformat(newest)).days) if newest else None
    in_range = [d for d in days if d <= expected]
    missing = (mark.day - mark.start).days + 1 - len(in_range)
    overdue = max(0.0, (now - deadline).total_seconds()) if not present else 0.0
    rule = (
        f"the source's newest partition {expected} ({mark.uri}) became available at "
        f"{mark.available_at:%Y-%m-%d %H:%M} UTC; layer '{layer}' is allowed {_hours(lag)} after that"
    )
    metadata = {
        "expected_partition": expected,
        "latest_materialized_partition": newest or "none",
        "partitions_behind": behind if behind is not None else (mark.day - mark.start).days + 1,
        "missing_partitions_up_to_expected": missing,
        "source_available_at": MetadataValue.timestamp(mark.available_at),
        "deadline": MetadataValue.timestamp(deadline),
        "deadline_rule": rule,
        "allowed_lag_hours": lag.total_seconds() / 3600,
        "overdue_seconds": overdue,
        "overdue_hours": round(overdue / 3600, 2),
    }
    if present:
        metadata[FRESH_UNTIL] = MetadataValue.timestamp(now + RECHECK_AFTER)
        return Verdict(True, f"Fresh: the source's newest partition {expected} is materialized.", metadata)
    if now < deadline:
        metadata[FRESH_UNTIL] = MetadataValue.timestamp(deadline)
        return Verdict(True, f"Not due yet: {expected} is expected by {deadline:%Y-%m-%d %H:%M} UTC ({rule}).", metadata)
    why = "was re-published after its last materialization" if stale_copy else "is not materialized"
    position = f"latest materialized partition is {newest}, {behind} day(s) behind" if newest else "nothing materialized yet"
    return Verdict(
        False,
        f"Late by {_hours(dt.timedelta(seconds=overdue))}: the source's newest partition {expected} {why} "
        f"(deadline {deadline:%Y-%m-%d %H:%M} UTC: {rule}); {position}.",
        metadata,
    )


def _hours(delta: dt.timedelta) -> str:
    return f"{delta.total_seconds() / 3600:.1f} h"


def build_partition_freshness_checks(specs: Sequence[AssetSpec]) -> Optional[AssetChecksDefinition]:
    """One multi-asset check: `newest_source_partition_on_time` on every daily asset."""
    tables = source_tables_by_asset(specs)
    daily = [spec for spec in specs if is_daily(spec) and tables.get(spec.key)]
    if not daily:
        return None
    check_specs = [
        AssetCheckSpec(
            CHECK_NAME,
            asset=spec.key,
            description=(
                f"Passes when the newest partition the source has for {', '.join(sorted(tables[spec.key]))} is "
                f"materialized, or is not yet due: due {_hours(lag_of(spec.key))} "
                "after the source made it available. WARN when late: metadata names the expected partition, "
                "the deadline and how late it is."
            ),
            metadata={"allowed_lag_hours": lag_of(spec.key).total_seconds() / 3600},
        )
        for spec in daily
    ]

    @multi_asset_check(specs=check_specs, can_subset=True, name="partition_freshness_checks")
    def partition_freshness(context: AssetCheckExecutionContext, source: SourceResource):
        now = dt.datetime.now(dt.timezone.utc)
        marks: dict[frozenset, Optional[HighWater]] = {}
        for check_key in sorted(context.selected_asset_check_keys, key=lambda k: k.asset_key.to_user_string()):
            key = check_key.asset_key
            upstream = tables[key]
            if upstream not in marks:
                marks[upstream] = combined_high_water(source, upstream)
            mark = marks[upstream]
            materialized = set(context.instance.get_materialized_partitions(key))
            at = materialized_at(context.instance, key, mark.day.isoformat()) if mark else None
            verdict = judge(key, mark, materialized, at, now)
            yield AssetCheckResult(
                asset_key=key,
                check_name=CHECK_NAME,
                passed=verdict.passed,
                severity=AssetCheckSeverity.WARN,
                description=verdict.description,
                metadata=verdict.metadata,
            )

    return partition_freshness


def materialized_at(instance, key: AssetKey, partition: str) -> Optional[dt.datetime]:
    """When `partition` of `key` was last materialized, or None."""
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
    ).records
    return dt.datetime.fromtimestamp(records[0].timestamp, tz=dt.timezone.utc) if records else None


def build_freshness_sensor(checks: AssetChecksDefinition) -> SensorDefinition:
    """Dagster's freshness-check sensor, running by default: it evaluates a check that never ran,
    a passed check once its `dagster/fresh_until_timestamp` passes, a failed one after the asset
    materializes again."""
    # Dagster marks the freshness-check factories superseded by FreshnessPolicy, which ignores
    # partitions; the partition-aware check is the point here, so the notice is silenced.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SupersessionWarning)
        return build_sensor_for_freshness_checks(
            freshness_checks=[checks],
            name=SENSOR_NAME,
            minimum_interval_seconds=30,
            default_status=DefaultSensorStatus.RUNNING,
            tags={"data_platform/trigger": "freshness"},
        )

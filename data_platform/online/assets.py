"""`ml/online_features`: the online store kept current by the asset graph, and its checks.

After each daily feature (or cleaned) update, the partition's rows of every relation serving needs go
to the online store: trailing aggregates as of the day and the day after, the published schedule and
its counts, the weather observations, the plane registry and route distances. They are computed by
the SQL of `data_platform.features` (`online_relation_query`), the same relations the offline
features join, so the two paths cannot define a feature differently.

Checks:
* `online_store_complete_for_newest_features` (ERROR): for the newest feature partition, the store
  holds every row the warehouse says it should, relation by relation, and its meta says so.
* `online_features_match_offline` (ERROR): serving skew. Every logged online prediction whose
  flight now has offline features is compared with them, feature by feature (floats within 1e-9);
  any mismatch fails, and the metadata names the mismatching features and flights.
"""


import datetime as dt
import json
import math
from collections import Counter
from typing import Optional

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    ConfigurableResource,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)
from dagster_duckdb import DuckDBResource
from pydantic import Field

from data_platform import features as F
from data_platform.assets.features import CODE_VERSION as FEATURES_CODE_VERSION
from data_platform.assets.features import (
    CLEANED_AIRPORTS, CLEANED_FLIGHTS, CLEANED_PLANES, CLEANED_WEATHER, FEATURES_KEY, PARTITIONS,
)
from data_platform.metadata import OWNER
from data_platform.online import store as S
from data_platform.partitions import days_between, run_days, single_run

CODE_VERSION = "1"
ONLINE_KEY = AssetKey(["ml", "online_features"])
COMPLETE_CHECK = "online_store_complete_for_newest_features"
SKEW_CHECK = "online_features_match_offline"
FLOAT_TOLERANCE = 1e-9
FEATURES_TABLE = "features.flight_features"


class OnlineStoreResource(ConfigurableResource):
    """Where the online store lives: `sqlite:///<path>` (default, under DATA_PLATFORM_HOME) or
    `redis://host:port/db` (DATA_PLATFORM_ONLINE_STORE)."""

    url: str = Field(description="sqlite:///<path> or redis://host:port/db")

    @classmethod
    def from_env(cls) -> "OnlineStoreResource":
        return cls(url=S.default_url())

    def open(self, readonly: bool = False) -> S.OnlineStore:
        return S.open_store(self.url, readonly=readonly)


def _rows(conn, relation: str, first: dt.date, last: dt.date) -> list[dict]:
    cursor = conn.execute(F.online_relation_query(relation), {"first": first, "last": last})
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def _missing_feature_days(conn, first: dt.date, last: dt.date) -> list[dt.date]:
    from data_platform.training_set import missing_feature_days

    return missing_feature_days(conn, first, last)


def write_range(conn, store: S.OnlineStore, first: dt.date, last: dt.date) -> dict[str, int]:
    """Write every relation for days first..last; returns rows written per relation."""
    written = {}
    for relation in F.ONLINE_RELATIONS:
        rows = _rows(conn, relation, first, last)
        spec = S.RELATIONS[relation]
        if relation in {a.name for a in F.AGGREGATES}:
            store.replace_days(relation, first, last + dt.timedelta(days=1), rows)
        elif spec.by_day:
            store.replace_days(relation, first, last, rows)
        elif relation == "planes":
            store.replace_all(relation, rows)
        else:
            store.upsert(relation, rows)
        written[relation] = len(rows)
    meta = store.meta()
    newest = max(filter(None, [meta.get("newest_day"), last.isoformat()]))
    oldest = min(filter(None, [meta.get("oldest_day"), first.isoformat()]))
    store.set_meta({
        "newest_day": newest, "oldest_day": oldest,
        "updated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "features_code_version": FEATURES_CODE_VERSION,
    })
    return written


@asset(
    key=ONLINE_KEY.path,
    group_name="ml",
    description=(
        "The online feature store the scoring service reads (SQLite under DATA_PLATFORM_HOME by default, "
        "Redis with DATA_PLATFORM_ONLINE_STORE=redis://...): per day, the trailing delay and cancellation "
        "aggregates of each carrier, origin, destination and flight as of that day and the next, the "
        "published schedule and its departures per origin and hour, origin weather observations, the plane "
        "registry and route distances. Computed by the same SQL as features/flight_features."
    ),
    owners=[OWNER],
    kinds={"duckdb", "sqlite", "redis"},
    code_version=CODE_VERSION,
    partitions_def=PARTITIONS,
    backfill_policy=single_run,
    
    # Same-day dependencies, as for the features: the SQL reads the history it needs, and a month
    # backfilled from the UI then targets that month (a 28-day mapping would widen it downstream).
    deps=[FEATURES_KEY, CLEANED_FLIGHTS, CLEANED_WEATHER, CLEANED_PLANES, CLEANED_AIRPORTS],
    metadata={"dagster/uri": MetadataValue.text("$DATA_PLATFORM_ONLINE_STORE or sqlite:///$DATA_PLATFORM_HOME/online/features.sqlite")},
)
def online_features(context: AssetExecutionContext, warehouse: DuckDBResource, online_store: OnlineStoreResource) -> MaterializeResult:
    first, last = run_days(context)
    store = online_store.open()
    try:
        with warehouse.get_connection() as conn:
            missing = _missing_feature_days(conn, first, last)
            if missing:
                raise Failure(
                    description=f"no features for {len(missing)} day(s) of {first}..{last} (first: {missing[0]}); "
                    "materialize features/flight_features for them first",
                    allow_retries=False,
                )
            written = write_range(conn, store, first, last)
        meta = store.meta()
        for day in days_between(first, last):
            context.add_asset_metadata(
                {"schedule_rows": store.count("schedule", day), "weather_rows": store.count("weather", day),
                 "trailing_flight_rows": store.count("trailing_flight", day)},
                partition_key=day.isoformat(),
            )
    finally:
        store.close()
    context.log.info(f"online store {S.redacted(online_store.url)}: days {first}..{last} written {written}")
    return MaterializeResult(metadata={
        "store": S.redacted(online_store.url),
        "newest_day": meta.get("newest_day", ""),
        **{f"rows_{name}": count for name, count in written.items()},
    })


@asset_check(
    asset=ONLINE_KEY,
    name=COMPLETE_CHECK,
    description=(
        "Asserts that the online store is complete for the newest partition of features/flight_features: "
        "for each relation, the store holds exactly as many rows for that day (and the day after, for the "
        "trailing aggregates) as the warehouse computes, and the store's newest day is not older. ERROR: "
        "serving would score that day's flights with missing inputs."
    ),
    additional_deps=[FEATURES_KEY],
)
def online_store_complete(context: AssetCheckExecutionContext, warehouse: DuckDBResource,
                          online_store: OnlineStoreResource) -> AssetCheckResult:
    from data_platform.storage import table_exists

    with warehouse.get_connection() as conn:
        if not table_exists(conn, FEATURES_TABLE):
            return AssetCheckResult(passed=False, severity=AssetCheckSeverity.ERROR, description="no features yet")
        newest = conn.execute(f"SELECT max(day) FROM {FEATURES_TABLE}").fetchone()[0]
        if newest is None:
            return AssetCheckResult(passed=False, severity=AssetCheckSeverity.ERROR, description="no features yet")
        expected = {relation: Counter(str(row.get("day", "all")) for row in _rows(conn, relation, newest, newest))
                    for relation in F.ONLINE_RELATIONS}
    store = online_store.open()
    try:
        meta = store.meta()
        problems, table = [], []
        for relation, by_day in expected.items():
            for day, count in sorted(by_day.items()):
                stored = store.count(relation, None if day == "all" else dt.date.fromisoformat(day))
                if relation == "routes":
                    ok = stored >= count  # routes accumulate over days
                else:
                    ok = stored == count
                table.append(f"{relation} {day}: expected {count}, stored {stored}")
                if not ok:
                    problems.append(f"{relation} {day}: expected {count} rows, store has {stored}")
        if (meta.get("newest_day") or "") < newest.isoformat():
            problems.append(f"store's newest day {meta.get('newest_day')} is older than the newest features {newest}")
    finally:
        store.close()
    return AssetCheckResult(
        passed=not problems,
        severity=AssetCheckSeverity.ERROR,
        description=("; ".join(problems[:10]) if problems else f"complete for {newest}"),
        metadata={"newest_feature_partition": str(newest), "store_newest_day": str(meta.get("newest_day")),
                  "store": S.redacted(online_store.url), "relations": MetadataValue.md("\n".join(f"- {t}" for t in table))},
    )


# --- serving skew --------------------------------------------------------------------------------

COMPARED = [name for name in F.FEATURE_DEFINITIONS if name not in F.FLIGHT_KEY]


def _normal(value):
    """Offline and logged values in one comparable form (timestamps as UTC ISO text)."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return value


def same(online, offline) -> bool:
    online, offline = _normal(online), _normal(offline)
    if online is None or offline is None:
        return online is None and offline is None
    if isinstance(online, (int, float)) and isinstance(offline, (int, float)) and not isinstance(online, bool):
        return abs(float(online) - float(offline)) <= FLOAT_TOLERANCE
    return online == offline


def compare_logged(conn, records: list[dict]) -> dict:
    """Compare logged online features with the offline rows of the same flights."""
    days = sorted({record["features"]["day"] for record in records})
    offline = {}
    for day in days:
        cursor = conn.execute(f"SELECT * FROM {FEATURES_TABLE} WHERE day = ?", [dt.date.fromisoformat(day)])
        names = [c[0] for c in cursor.description]
        for row in cursor.fetchall():
            values = dict(zip(names, row))
            offline[(values["day"].isoformat(), values["carrier"], values["flight"], values["origin"])] = values
    compared = pending = stale = 0
    mismatches = []
    counts: Counter = Counter()
    for record in records:
        features = record["features"]
        if record.get("stale_seconds", 0) > 0:
            stale += 1
            continue
        key = (features["day"], features["carrier"], features["flight"], features["origin"])
        row = offline.get(key)
        if row is None:
            pending += 1
            continue
        compared += 1
        wrong = [name for name in COMPARED if not same(features.get(name), row.get(name))]
        for name in wrong:
            counts[name] += 1
        if wrong:
            mismatches.append({"flight": "/".join(map(str, key)), "logged_at": record.get("logged_at"),
                               "model_version": record.get("model_version"),
                               "features": {name: {"online": features.get(name), "offline": _normal(row.get(name))}
                                            for name in wrong}})
    return {"compared": compared, "pending": pending, "stale": stale, "mismatches": mismatches, "by_feature": counts}


@asset_check(
    asset=ONLINE_KEY,
    name=SKEW_CHECK,
    description=(
        "Serving skew: every online prediction logged by the scoring service (request, features, probability, "
        "model version, time) whose flight now has offline features is compared with the features/flight_features "
        f"row, feature by feature (floats within {FLOAT_TOLERANCE}). ERROR on any mismatch, with the mismatching "
        "features and flights in the metadata. Predictions served stale (cut-off after the newest data) are "
        "counted, not compared; flights without offline features yet are pending."
    ),
    additional_deps=[FEATURES_KEY],
)
def online_features_match_offline(context: AssetCheckExecutionContext, warehouse: DuckDBResource) -> AssetCheckResult:
    from data_platform.online.prediction_log import read_records

    days = _run_days(context)
    records = read_records(days)
    with warehouse.get_connection() as conn:
        from data_platform.storage import table_exists

        outcome = compare_logged(conn, records) if records and table_exists(conn, FEATURES_TABLE) else {
            "compared": 0, "pending": len(records), "stale": 0, "mismatches": [], "by_feature": Counter()}
    mismatches = outcome["mismatches"]
    by_feature = dict(outcome["by_feature"].most_common())
    description = (
        f"{len(mismatches)} of {outcome['compared']} logged predictions differ from the offline features "
        f"({', '.join(f'{k}: {v}' for k, v in by_feature.items())})" if mismatches else
        f"{outcome['compared']} logged predictions match the offline features"
    ) + f"; {outcome['pending']} pending (no offline row yet), {outcome['stale']} served stale (not compared)"
    return AssetCheckResult(
        passed=not mismatches,
        severity=AssetCheckSeverity.ERROR,
        description=description,
        metadata={
            "compared": outcome["compared"], "pending": outcome["pending"], "stale": outcome["stale"],
            "mismatching_predictions": len(mismatches),
            "mismatching_features": MetadataValue.json(by_feature),
            "mismatch_sample": MetadataValue.json(mismatches[:20]),
            "checked_days": ", ".join(days) if days else "all logged days",
        },
    )


def _run_days(context: AssetCheckExecutionContext) -> Optional[list[str]]:
    """The run's partition days; None (every logged day) when launched alone."""
    op_context = context.op_execution_context
    if op_context.has_partition_key_range:
        keys = op_context.partition_key_range
        first, last = dt.date.fromisoformat(keys.start), dt.date.fromisoformat(keys.end)
        return [day.isoformat() for day in days_between(first, last)]
    if op_context.has_partition_key:
        return [op_context.partition_key]
    return None


online_assets = [online_features]
online_checks = [online_store_complete, online_features_match_offline]

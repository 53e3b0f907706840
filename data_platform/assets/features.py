"""The features asset (features/flight_features): the declarations of `data_platform.features` computed
per partition in the warehouse, with the column lineage they imply, on the calendar of the flights
the model predicts.
"""


import datetime as dt

from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    Failure,
    MaterializeResult,
    TableColumnDep,
    TableColumnLineage,
    asset,
)
from dagster_duckdb import DuckDBResource

from data_platform.compute import ComputeResource, merged
from data_platform.features import (
    AGGREGATES, CONTRACT, CUTOFF_HOURS, DECLARATIONS, DELAY_MINUTES, FEATURE_QUERY, HOLIDAYS_PARAM, LABEL, Feature,
    federal_holidays, source_inputs,
)
from data_platform.metadata import OWNER, combined_version, record_partitions, table_definition_metadata
from data_platform.partitions import dataset_partitions, days_between, run_days, single_run
from data_platform.storage import partition_stats, replace_days

CODE_VERSION = "1"

# The datasets the ML graph reads. Its calendar is that of the flights it predicts: the features,
# model inputs, predictions and performance have a partition for every day the flights contract
# declares (the bundled replay's year, or up to today for a live feed).
FLIGHTS_DATASET = "flights"


def _calendar():
    from data_platform.datasets import declared

    found = declared()
    if FLIGHTS_DATASET in found.datasets:
        return dataset_partitions(found.datasets[FLIGHTS_DATASET])
    # The flights contract does not validate (its placeholder assets say why): the graph keeps the
    # calendar the file declares, so the rest of the platform loads; it cannot run until it is fixed.
    return _declared_calendar(found.broken[FLIGHTS_DATASET].path)


def _declared_calendar(path):
    import datetime as dt

    from data_platform.datasets.load import read_document
    from data_platform.partitions import daily_partitions

    try:
        table = read_document(path)[0]["schema"][0]
        part = next(c["value"] for c in table["customProperties"] if c["property"] == "partitioning")
        end = part.get("end")
        return daily_partitions(dt.date.fromisoformat(part["start"]), dt.date.fromisoformat(end) if end else None)
    except Exception:  # any shape: the contract's own problems are reported by its placeholders
        today = dt.datetime.now(dt.timezone.utc).date()
        return daily_partitions(today, None)


PARTITIONS = _calendar()

CLEANED_FLIGHTS = AssetKey(["cleaned", "flights"])
CLEANED_WEATHER = AssetKey(["cleaned", "weather"])
CLEANED_AIRPORTS = AssetKey(["cleaned", "airports"])
CLEANED_PLANES = AssetKey(["cleaned", "planes"])
FEATURES_KEY = AssetKey(["features", "flight_features"])
# The reference tables the features read, and what they are built from (materialize them first).
REFERENCE_INPUTS = [AssetKey(["raw", "planes"]), CLEANED_PLANES, AssetKey(["raw", "airports"]), CLEANED_AIRPORTS]

def _lineage(declarations: list[Feature] = DECLARATIONS) -> TableColumnLineage:
    """Column lineage derived from the declarations: a feature depends on the source columns of every
    input its expression reads, and an input on the columns it is read or matched by."""
    def on(key: AssetKey, *columns: str) -> list[TableColumnDep]:
        return [TableColumnDep(asset_key=key, column_name=name) for name in columns]

    history = on(CLEANED_FLIGHTS, "day", "arr_delay", "cancelled", "diverted", "sched_dep_utc", "dep_delay",
                 "arr_time", "dest") + on(CLEANED_AIRPORTS, "faa", "tzone")
    flight_inputs, plane_inputs, weather_inputs = source_inputs(declarations)
    inputs = {
        **{name: on(CLEANED_FLIGHTS, name) for name in flight_inputs},
        "departures_in_hour": on(CLEANED_FLIGHTS, "day", "origin", "hour"),
        **{name: on(CLEANED_FLIGHTS, "tailnum") + on(CLEANED_PLANES, "tailnum", column) for name, column in plane_inputs.items()},
        **{name: on(CLEANED_FLIGHTS, "origin", "sched_dep_utc") + on(CLEANED_WEATHER, "origin", "observed_at", column)
           for name, column in weather_inputs.items()},
        **{name: on(CLEANED_FLIGHTS, *a.keys) + history for a in AGGREGATES for name in a.inputs},
    }
    deps = {feature.name: list(dict.fromkeys(dep for name in sorted(feature.expression.columns()) for dep in inputs[name]))
            for feature in declarations}
    return TableColumnLineage(deps_by_column={**deps, LABEL: on(CLEANED_FLIGHTS, "arr_delay")})


def compute_features(conn, first: dt.date, last: dt.date) -> dict[str, dict]:
    """Write features for days first..last (one commit); returns per-day counts for metadata."""
    contract = CONTRACT
    params = {"first": first, "last": last, HOLIDAYS_PARAM: federal_holidays(first, last)}
    replace_days(conn, contract, f"SELECT * FROM ({FEATURE_QUERY})", params, first, last)
    counts = conn.execute(
        """
        SELECT day, count(*) FILTER (WHERE cancelled), count(*) FILTER (WHERE diverted)
        FROM cleaned.flights WHERE day BETWEEN ? AND ? GROUP BY day
        """,
        [first, last],
    ).fetchall()
    quality = conn.execute(
        f"""
        SELECT day, avg({LABEL}::INTEGER), count(*) FILTER (WHERE weather_observed_at IS NULL),
               count(*) FILTER (WHERE plane_seats IS NULL), count(*) FILTER (WHERE origin_delay_rate_7d IS NULL)
        FROM {contract.name} WHERE day BETWEEN ? AND ? GROUP BY day
        """,
        [first, last],
    ).fetchall()
    outcome = {name: {} for name in (
        "cancelled_excluded", "diverted_excluded", "label_positive_rate", "rows_without_weather",
        "rows_without_plane", "rows_without_history",
    )}
    for day, cancelled, diverted in counts:
        outcome["cancelled_excluded"][day] = cancelled
        outcome["diverted_excluded"][day] = diverted
    for day, positive_rate, no_weather, no_plane, no_history in quality:
        outcome["label_positive_rate"][day] = float(positive_rate)
        outcome["rows_without_weather"][day] = no_weather
        outcome["rows_without_plane"][day] = no_plane
        outcome["rows_without_history"][day] = no_history
    return outcome


def missing_upstream_days(conn, first: dt.date, last: dt.date) -> list[dt.date]:
    """Days of the range without any cleaned flight: their upstream partition was never written."""
    present = {
        row[0] for row in conn.execute(
            "SELECT DISTINCT day FROM cleaned.flights WHERE day BETWEEN ? AND ?", [first, last]
        ).fetchall()
    }
    return [day for day in days_between(first, last) if day not in present]


@asset(
    key=FEATURES_KEY.path,
    group_name="features",
    description=(
        "Point-in-time flight features, one row per completed flight, with the label is_delayed "
        f"(arr_delay > {DELAY_MINUTES}). Only what is known {CUTOFF_HOURS} h before scheduled departure: schedule, "
        "route, plane registry, origin weather at or before the cut-off, delay rates of earlier days. "
        "Cancelled and diverted flights are excluded and counted per partition."
    ),
    owners=[OWNER],
    kinds={"duckdb", "sql"},
    code_version=CODE_VERSION,
    partitions_def=PARTITIONS,
    backfill_policy=single_run,
    
    # Same-day dependencies. The SQL also reads the previous LOOKBACK_DAYS of cleaned flights (trailing
    # rates) and the previous day of weather (a cut-off just after midnight), but a windowed partition
    # mapping here would make a UI backfill of a month also target the features (and predictions) of the
    # 28 days after it, whose flights are not loaded, and those runs fail. Missing history is unknown
    # history: the trailing features of such a day are NULL, never computed from later days.
    deps=[CLEANED_FLIGHTS, CLEANED_WEATHER, AssetDep(CLEANED_PLANES), AssetDep(CLEANED_AIRPORTS)],
    metadata={**table_definition_metadata(CONTRACT), "dagster/column_lineage": _lineage()},
)
def flight_features(context: AssetExecutionContext, warehouse: DuckDBResource, compute: ComputeResource) -> MaterializeResult:
    first, last = run_days(context)
    with warehouse.get_connection(context) as conn:
        missing = missing_upstream_days(conn, first, last)
    if missing:
        raise Failure(
            description=f"cleaned.flights has no rows for {len(missing)} day(s) of {first}..{last} "
            f"(first: {missing[0]}); materialize cleaned/flights for them first",
            allow_retries=False,
        )
    done, spread = compute.run(context, "features", "flights", first, last)
    outcome = merged(done)
    with warehouse.get_connection(context) as conn:
        stats = partition_stats(conn, CONTRACT, first, last)
    record_partitions(context, stats, **outcome)
    rows = sum(s.rows for s in stats.values())
    excluded = {name: sum(outcome[name].values()) for name in ("cancelled_excluded", "diverted_excluded")}
    context.log.info(
        f"features {first}..{last}: {rows:,} rows, {excluded['cancelled_excluded']:,} cancelled and "
        f"{excluded['diverted_excluded']:,} diverted flights excluded"
    )
    return MaterializeResult(
        metadata={"rows_in_run": rows, **{f"{name}_in_run": value for name, value in excluded.items()}, **spread},
        data_version=combined_version(stats),
    )


feature_assets = [flight_features]

"""Features layer: one row per completed flight, built only from what is known 2 hours before it.

Point-in-time rules (tested in data_platform_tests/test_features.py by perturbing real data):
- the cut-off of a flight is its scheduled departure (UTC) minus `CUTOFF_HOURS`;
- schedule, route, carrier and plane registry attributes are known in advance;
- origin weather is the last observation at or before the cut-off (never the flight's own hour);
- trailing rates come from flights of *earlier days* (D-7..D-1, D-28..D-1) whose outcome was known
  at the day's *horizon*, the earliest cut-off of day D's published flights (local midnight of D
  minus `CUTOFF_HOURS` when D's schedule is not loaded): a delay once the flight arrived (its arrival
  in UTC, from the destination's time zone), a cancellation at its scheduled departure, a departure
  when it happened. A red-eye of D-1 that lands after the horizon does not count for D;
- `dep_delay`, actual departure/arrival times and air time are never features; the label
  (`is_delayed` = arr_delay > 15 min) is the only column that depends on the flight's own outcome.

Cancelled and diverted flights have no label: they are left out and counted per partition.
"""


import datetime as dt
import os
from dataclasses import dataclass

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

from data_platform import contracts
from data_platform.feature_expressions import (
    Coalesce, Col, Const, DatePart, DaysToNearest, Expr, HoursBefore, MinutesBetween, Ratio, When, select_list,
)
from data_platform.metadata import OWNER, combined_version, record_partitions, table_definition_metadata
from data_platform.partitions import dataset_partitions, days_between, run_days, single_run
from data_platform.warehouse import partition_stats, replace_days, transaction

CODE_VERSION = "1"
CUTOFF_HOURS = 2
LOOKBACK_DAYS = 28          # longest trailing window; the partition mapping covers it
WEATHER_MAX_AGE_HOURS = 6   # an older last observation counts as missing
DELAY_MINUTES = 15

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
RAW_PLANES = AssetKey(["raw", "planes"])
FEATURES_KEY = AssetKey(["features", "flight_features"])
# The reference tables the features read, and what they are built from (materialize them first).
REFERENCE_INPUTS = [RAW_PLANES, AssetKey(["raw", "airports"]), CLEANED_AIRPORTS]

# --- the names other modules use ------------------------------------------------------------

FLIGHT_KEY = ["day", "carrier", "flight", "origin"]
LABEL = "is_delayed"
CATEGORICAL_FEATURES = ["carrier", "origin", "dest", "plane_engine"]
SCHEDULE_FEATURES = [
    "distance", "sched_dep_hour", "sched_dep_minute_of_day", "sched_arr_minute_of_day",
    "day_of_week", "day_of_year", "month", "days_to_holiday", "origin_departures_in_hour",
]
PLANE_FEATURES = ["plane_age", "plane_seats", "plane_engines"]
WEATHER_FEATURES = [
    "wx_temp", "wx_dewp", "wx_humid", "wx_wind_dir", "wx_wind_speed", "wx_wind_gust",
    "wx_precip", "wx_pressure", "wx_visib", "wx_age_minutes",
]
TRAILING_FEATURES = [
    "carrier_origin_delay_rate_7d", "carrier_origin_flights_7d", "carrier_delay_rate_7d",
    "origin_delay_rate_1d", "origin_delay_rate_7d", "origin_cancel_rate_1d",
    "dest_delay_rate_7d", "flight_delay_rate_28d", "flight_flights_28d",
]
NUMERICAL_FEATURES = SCHEDULE_FEATURES + PLANE_FEATURES + WEATHER_FEATURES + TRAILING_FEATURES
FEATURES = CATEGORICAL_FEATURES + NUMERICAL_FEATURES
# Columns that describe the outcome or happen after the cut-off: never a feature.
FORBIDDEN = [
    "dep_delay", "arr_delay", "dep_time", "arr_time", "air_time", "cancelled", "diverted", LABEL,
]


def federal_holidays(first: dt.date, last: dt.date) -> list[dt.date]:
    """US federal holidays around first..last (one year of margin for the distance feature)."""
    import pandas as pd
    from pandas.tseries.holiday import USFederalHolidayCalendar

    days = USFederalHolidayCalendar().holidays(
        start=pd.Timestamp(first) - pd.Timedelta(days=366), end=pd.Timestamp(last) + pd.Timedelta(days=366)
    )
    return [day.date() for day in days]


# --- one definition per feature ---------------------------------------------------------------
#
# A feature is computed in two steps, each defined once here:
#
# 1. *Inputs*: the flight's own published facts, plus rows matched to it from relations that are
#    known at its cut-off: aggregates of earlier days per entity (`AGGREGATES`, SQL), the published
#    schedule count of its origin and hour, the plane registry, and the last origin weather
#    observation at or before the cut-off. Offline, `FEATURE_QUERY` joins them in the warehouse; the
#    online store (`ml/online_features`) holds the rows of the same relations, computed by the same
#    SQL (`online_relation_query`), and the service looks them up by the same keys.
# 2. *Features*: `FEATURE_DEFINITIONS`, expressions over one row of inputs, declared once in the
#    small expression language of `data_platform.feature_expressions` and compiled to SQL for the
#    offline asset and to Python for the online service.

LOCAL_TIMEZONE = "America/New_York"  # the source's local time: year/month/day/hour/minute are NYC
HOLIDAYS_PARAM = "holidays"

# Input columns per source. Weather columns are prefixed: `w_temp` is the matched observation's temp.
WEATHER_COLUMNS = ["temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib"]
FLIGHT_INPUTS = ["day", "carrier", "flight", "origin", "dest", "tailnum", "sched_dep_utc", "distance",
                 "hour", "minute", "sched_arr_time"]
PLANE_INPUTS = {"p_year": "year", "p_seats": "seats", "p_engines": "engines", "p_engine": "engine"}
WEATHER_INPUTS = {"w_observed_at": "observed_at", **{f"w_{name}": name for name in WEATHER_COLUMNS}}


@dataclass(frozen=True)
class Aggregate:
    """A relation of per-day, per-entity values computed from earlier days only.

    `sql` is a CTE body over `target_days(day)` and `history` (completed/cancelled flags of the
    LOOKBACK_DAYS before the target days); `keys` are its entity columns besides `day`; `inputs` maps
    input column names to its value columns."""

    name: str
    keys: tuple[str, ...]
    inputs: dict[str, str]
    sql: str


# An outcome counts in a target day's trailing rates only when it was known at the day's horizon
# (`horizons`: the earliest cut-off of its published schedule); `history` says when each was known.
ARRIVED = "h.arrived_at <= t.horizon"


def _trailing(name: str, prefix: str, keys: tuple[str, ...], days: int) -> Aggregate:
    """Per target day and key: flights of the `days` days before it that had arrived by its horizon
    (n) and the delayed ones among them (k)."""
    columns = ", ".join(f"h.{key}" for key in keys)
    sql = f"""
    SELECT t.day, {columns}, count(h.delayed) AS n, sum(h.delayed::INTEGER)::DOUBLE AS k
    FROM horizons t JOIN history h ON h.day BETWEEN t.day - {days} AND t.day - 1 AND {ARRIVED}
    GROUP BY ALL"""
    return Aggregate(name, keys, {f"{prefix}_n": "n", f"{prefix}_k": "k"}, sql)


AGGREGATES = [
    _trailing("trailing_carrier_origin", "tco", ("carrier", "origin"), 7),
    _trailing("trailing_carrier", "tc", ("carrier",), 7),
    Aggregate("trailing_origin", ("origin",), {f"tor_{name}": name for name in ("n7", "k7", "n1", "k1", "s1", "c1")}, f"""
    SELECT t.day, h.origin,
           count(h.delayed) FILTER (WHERE {ARRIVED}) AS n7,
           sum(h.delayed::INTEGER) FILTER (WHERE {ARRIVED})::DOUBLE AS k7,
           count(h.delayed) FILTER (WHERE h.day = t.day - 1 AND {ARRIVED}) AS n1,
           sum(h.delayed::INTEGER) FILTER (WHERE h.day = t.day - 1 AND {ARRIVED})::DOUBLE AS k1,
           -- cancellation rate: of the previous day's flights whose fate was known at the horizon
           -- (departed, or cancelled and past their scheduled departure), the cancelled share
           count(*) FILTER (WHERE h.day = t.day - 1) AS s1,
           count(*) FILTER (WHERE h.day = t.day - 1 AND h.cancelled)::DOUBLE AS c1
    FROM horizons t JOIN history h ON h.day BETWEEN t.day - 7 AND t.day - 1 AND h.resolved_at <= t.horizon
    GROUP BY ALL"""),
    _trailing("trailing_dest", "td", ("dest",), 7),
    _trailing("trailing_flight", "tf", ("carrier", "flight", "origin"), LOOKBACK_DAYS),
]
AGGREGATE_INPUTS = {column for aggregate in AGGREGATES for column in aggregate.inputs}

# The published schedule of a day (cancelled flights were scheduled too), per origin and local hour.
DEPARTURES_IN_HOUR_SQL = "SELECT day, origin, hour, count(*) AS n FROM flights GROUP BY ALL"
PLANES_SQL = """
    SELECT tailnum, any_value(TRY_CAST(year AS INTEGER)) AS year, any_value(TRY_CAST(seats AS INTEGER)) AS seats,
           any_value(TRY_CAST(engines AS INTEGER)) AS engines, any_value(engine) AS engine
    FROM raw.planes GROUP BY tailnum"""


CUTOFF = HoursBefore(Col("sched_dep_utc"), CUTOFF_HOURS)
# The matched observation counts only when it is at most WEATHER_MAX_AGE_HOURS older than the cut-off.
_FRESH = Col("w_observed_at") >= HoursBefore(CUTOFF, WEATHER_MAX_AGE_HOURS)
_OBSERVED = When(_FRESH, Col("w_observed_at"))
_DAY = Col("day")

FEATURE_DEFINITIONS: dict[str, Expr] = {
    **{name: Col(name) for name in ("day", "carrier", "flight", "origin", "dest", "tailnum", "sched_dep_utc")},
    "cutoff_utc": CUTOFF,
    "distance": Col("distance"),
    "sched_dep_hour": Col("hour"),
    "sched_dep_minute_of_day": Col("hour") * 60 + Col("minute"),
    "sched_arr_minute_of_day": (Col("sched_arr_time") // 100) * 60 + Col("sched_arr_time") % 100,
    "day_of_week": DatePart("isodow", _DAY),
    "day_of_year": DatePart("dayofyear", _DAY),
    "month": DatePart("month", _DAY),
    "days_to_holiday": DaysToNearest(_DAY, HOLIDAYS_PARAM),
    "origin_departures_in_hour": Col("departures_in_hour"),
    "plane_age": DatePart("year", _DAY) - Col("p_year"),
    "plane_seats": Col("p_seats"),
    "plane_engines": Col("p_engines"),
    "plane_engine": Col("p_engine"),
    "weather_observed_at": _OBSERVED,
    **{f"wx_{name}": When(_FRESH, Col(f"w_{name}")) for name in WEATHER_COLUMNS},
    "wx_age_minutes": MinutesBetween(_OBSERVED, CUTOFF),
    "carrier_origin_delay_rate_7d": Ratio(Col("tco_k"), Col("tco_n")),
    "carrier_origin_flights_7d": Coalesce(Col("tco_n"), Const(0)),
    "carrier_delay_rate_7d": Ratio(Col("tc_k"), Col("tc_n")),
    "origin_delay_rate_1d": Ratio(Col("tor_k1"), Col("tor_n1")),
    "origin_delay_rate_7d": Ratio(Col("tor_k7"), Col("tor_n7")),
    "origin_cancel_rate_1d": Ratio(Col("tor_c1"), Col("tor_s1")),
    "dest_delay_rate_7d": Ratio(Col("td_k"), Col("td_n")),
    "flight_delay_rate_28d": Ratio(Col("tf_k"), Col("tf_n")),
    "flight_flights_28d": Coalesce(Col("tf_n"), Const(0)),
}
# Every input column a feature reads (the online path must provide each one).
FEATURE_INPUTS = sorted(set().union(*(e.columns() for e in FEATURE_DEFINITIONS.values())))


def _history_sql(history_last: str) -> str:
    """Flights of the LOOKBACK_DAYS before $first up to `history_last`: their outcome and when it was
    known. `resolved_at`: the actual departure, or the scheduled one of a cancelled flight.
    `arrived_at` (completed flights): the gate arrival, the first `arr_time` on the destination's
    clock after the actual departure; a destination without a time zone in cleaned.airports is read
    on the origin's clock (New York: the destinations missing there are Atlantic, an hour ahead, so
    the arrival is placed later, never earlier)."""
    departed = "f.sched_dep_utc + to_minutes(f.dep_delay::BIGINT)"
    zone = f"coalesce(a.tzone, '{LOCAL_TIMEZONE}')"
    departed_there = f"timezone({zone}, {departed})"
    arrival_wall = f"date_trunc('day', {departed_there}) + to_minutes(((f.arr_time // 100) * 60 + f.arr_time % 100)::BIGINT)"
    return f"""
    SELECT f.day, f.carrier, f.flight, f.origin, f.dest, f.cancelled,
           CASE WHEN NOT f.cancelled AND NOT f.diverted THEN f.arr_delay > {DELAY_MINUTES} END AS delayed,
           CASE WHEN f.cancelled THEN f.sched_dep_utc ELSE {departed} END AS resolved_at,
           CASE WHEN NOT f.cancelled AND NOT f.diverted THEN timezone({zone},
               CASE WHEN {arrival_wall} < {departed_there} THEN {arrival_wall} + INTERVAL 1 DAY ELSE {arrival_wall} END)
           END AS arrived_at
    FROM cleaned.flights f LEFT JOIN cleaned.airports a ON a.faa = f.dest
    WHERE f.day BETWEEN $first::DATE - {LOOKBACK_DAYS} AND {history_last}"""


def _sources(target_days: str, history_last: str) -> str:
    """The CTEs every feature relation is built from, for flights of $first..$last."""
    return f"""
flights AS (
    SELECT *, {CUTOFF.sql()} AS cutoff_utc
    FROM cleaned.flights WHERE day BETWEEN $first AND $last
),
history AS ({_history_sql(history_last)}
),
target_days AS ({target_days}),
-- each target day's horizon: the earliest cut-off of its published flights; a day whose schedule is
-- not loaded (the day after the newest, online) takes the earliest a flight of that local day can have
horizons AS (
    SELECT t.day, coalesce(min(f.cutoff_utc),
           timezone('{LOCAL_TIMEZONE}', t.day::TIMESTAMP) - INTERVAL {CUTOFF_HOURS} HOUR) AS horizon
    FROM target_days t LEFT JOIN flights f ON f.day = t.day GROUP BY t.day
),
{",".join(f"{os.linesep}{a.name} AS ({a.sql}{os.linesep})" for a in AGGREGATES)},
departures_in_hour AS ({DEPARTURES_IN_HOUR_SQL}),
planes AS ({PLANES_SQL}
),
weather AS (
    SELECT * FROM cleaned.weather WHERE day BETWEEN $first::DATE - 1 AND $last
)"""


def _aggregate_join(aggregate: Aggregate, alias: str) -> str:
    on = " AND ".join([f"{alias}.day = f.day", *(f"{alias}.{key} = f.{key}" for key in aggregate.keys)])
    return f"LEFT JOIN {aggregate.name} {alias} ON {on}"


FEATURE_QUERY = f"""
WITH {_sources("SELECT DISTINCT day FROM flights", "$last::DATE - 1")},
-- the last origin observation at or before each flight's cut-off
matched_weather AS (
    SELECT f.day, f.carrier, f.flight, f.origin,
           {", ".join(f"w.{column} AS {name}" for name, column in WEATHER_INPUTS.items())}
    FROM flights f ASOF LEFT JOIN weather w
      ON f.origin = w.origin AND f.cutoff_utc >= w.observed_at
),
inputs AS (
    SELECT {", ".join(f"f.{name}" for name in FLIGHT_INPUTS)}, f.arr_delay, f.cancelled, f.diverted,
           dh.n AS departures_in_hour,
           {", ".join(f"p.{column} AS {name}" for name, column in PLANE_INPUTS.items())},
           {", ".join(f"mw.{name}" for name in WEATHER_INPUTS)},
           {", ".join(f"a{i}.{column} AS {name}" for i, a in enumerate(AGGREGATES) for name, column in a.inputs.items())}
    FROM flights f
    LEFT JOIN matched_weather mw USING (day, carrier, flight, origin)
    LEFT JOIN planes p ON p.tailnum = f.tailnum
    LEFT JOIN departures_in_hour dh ON dh.day = f.day AND dh.origin = f.origin AND dh.hour = f.hour
    {(os.linesep + "    ").join(_aggregate_join(a, f"a{i}") for i, a in enumerate(AGGREGATES))}
)
SELECT
    {select_list(FEATURE_DEFINITIONS)},
    arr_delay > {DELAY_MINUTES} AS {LABEL}
FROM inputs
WHERE NOT cancelled AND NOT diverted
"""

# What the online store holds, per relation: the same SQL, for the as-of days $first..$last + 1 (the
# day after the newest data serves flights later than the data).
ONLINE_RELATIONS = [*(a.name for a in AGGREGATES), "departures_in_hour", "schedule", "weather", "planes", "routes"]


def online_relation_query(relation: str) -> str:
    """SQL (parameters $first, $last) for the rows of `relation` the online store keeps for days
    $first..$last: aggregates as of each day $first..$last + 1, the published schedule and its counts,
    the weather observations, the plane registry and the route distances."""
    sources = _sources("SELECT range::DATE AS day FROM range($first::DATE, $last::DATE + 2, INTERVAL 1 DAY)", "$last")
    body = {
        "departures_in_hour": "SELECT * FROM departures_in_hour",
        "schedule": "SELECT day, carrier, flight, origin, dest, tailnum, distance, sched_arr_time FROM flights",
        "weather": f"SELECT day, origin, {', '.join(WEATHER_INPUTS.values())} FROM weather WHERE day BETWEEN $first AND $last",
        "planes": "SELECT * FROM planes",
        # A route's distance: the most common one in the range (two routes have two distances in 2013).
        "routes": "SELECT origin, dest, mode(distance ORDER BY distance DESC) AS distance FROM flights GROUP BY ALL",
    }.get(relation, f"SELECT * FROM {relation}")
    return f"WITH {sources}\n{body}"


def _lineage() -> TableColumnLineage:
    """Column lineage derived from the declarations: a feature depends on the source columns of every
    input its expression reads, and an input on the columns it is read or matched by."""
    def on(key: AssetKey, *columns: str) -> list[TableColumnDep]:
        return [TableColumnDep(asset_key=key, column_name=name) for name in columns]

    history = on(CLEANED_FLIGHTS, "day", "arr_delay", "cancelled", "diverted", "sched_dep_utc", "dep_delay",
                 "arr_time", "dest") + on(CLEANED_AIRPORTS, "faa", "tzone")
    inputs = {
        **{name: on(CLEANED_FLIGHTS, name) for name in FLIGHT_INPUTS},
        "departures_in_hour": on(CLEANED_FLIGHTS, "day", "origin", "hour"),
        **{name: on(CLEANED_FLIGHTS, "tailnum") + on(RAW_PLANES, "tailnum", column) for name, column in PLANE_INPUTS.items()},
        **{name: on(CLEANED_FLIGHTS, "origin", "sched_dep_utc") + on(CLEANED_WEATHER, "origin", "observed_at", column)
           for name, column in WEATHER_INPUTS.items()},
        **{name: on(CLEANED_FLIGHTS, *a.keys) + history for a in AGGREGATES for name in a.inputs},
    }
    deps = {feature: list(dict.fromkeys(dep for name in sorted(expression.columns()) for dep in inputs[name]))
            for feature, expression in FEATURE_DEFINITIONS.items()}
    return TableColumnLineage(deps_by_column={**deps, LABEL: on(CLEANED_FLIGHTS, "arr_delay")})


def compute_features(conn, first: dt.date, last: dt.date) -> dict[str, dict]:
    """Write features for days first..last (one transaction); returns per-day counts for metadata."""
    contract = contracts.FEATURES
    params = {"first": first, "last": last, HOLIDAYS_PARAM: federal_holidays(first, last)}
    with transaction(conn):
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
    pool="duckdb",
    # Same-day dependencies. The SQL also reads the previous LOOKBACK_DAYS of cleaned flights (trailing
    # rates) and the previous day of weather (a cut-off just after midnight), but a windowed partition
    # mapping here would make a UI backfill of a month also target the features (and predictions) of the
    # 28 days after it, whose flights are not loaded, and those runs fail. Missing history is unknown
    # history: the trailing features of such a day are NULL, never computed from later days.
    deps=[CLEANED_FLIGHTS, CLEANED_WEATHER, AssetDep(RAW_PLANES), AssetDep(CLEANED_AIRPORTS)],
    metadata={**table_definition_metadata(contracts.FEATURES), "dagster/column_lineage": _lineage()},
)
def flight_features(context: AssetExecutionContext, warehouse: DuckDBResource) -> MaterializeResult:
    first, last = run_days(context)
    with warehouse.get_connection() as conn:
        missing = missing_upstream_days(conn, first, last)
        if missing:
            raise Failure(
                description=f"cleaned.flights has no rows for {len(missing)} day(s) of {first}..{last} "
                f"(first: {missing[0]}); materialize cleaned/flights for them first",
                allow_retries=False,
            )
        outcome = compute_features(conn, first, last)
        stats = partition_stats(conn, contracts.FEATURES, first, last)
    record_partitions(context, stats, **outcome)
    rows = sum(s.rows for s in stats.values())
    excluded = {name: sum(outcome[name].values()) for name in ("cancelled_excluded", "diverted_excluded")}
    context.log.info(
        f"features {first}..{last}: {rows:,} rows, {excluded['cancelled_excluded']:,} cancelled and "
        f"{excluded['diverted_excluded']:,} diverted flights excluded"
    )
    return MaterializeResult(
        metadata={"rows_in_run": rows, **{f"{name}_in_run": value for name, value in excluded.items()}},
        data_version=combined_version(stats),
    )


feature_assets = [flight_features]

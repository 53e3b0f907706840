"""The features: one declaration per feature, and everything derived from them (the offline SQL, the
online relations, the features contract, the model's feature lists). One row per completed flight,
built only from what is known 2 hours before it.

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

from data_platform import contracts
from data_platform.feature_expressions import (
    Coalesce, Col, Const, DatePart, DaysToNearest, Expr, HoursBefore, MinutesBetween, Ratio, When, select_list,
)

CUTOFF_HOURS = 2
LOOKBACK_DAYS = 28          # longest trailing window; the partition mapping covers it
WEATHER_MAX_AGE_HOURS = 6   # an older last observation counts as missing
DELAY_MINUTES = 15

# --- the names other modules use ------------------------------------------------------------

FLIGHT_KEY = ["day", "carrier", "flight", "origin"]
LABEL = "is_delayed"
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


# --- one declaration per feature --------------------------------------------------------------
#
# A feature is computed in two steps, each defined once here:
#
# 1. *Inputs*: the flight's own published facts, plus rows matched to it from relations that are
#    known at its cut-off: aggregates of earlier days per entity (`AGGREGATES`, SQL), the published
#    schedule count of its origin and hour, the plane registry, and the last origin weather
#    observation at or before the cut-off. Offline, `feature_query` joins them in the warehouse; the
#    online store (`ml/online_features`) holds the rows of the same relations, computed by the same
#    SQL (`online_relation_query`), and the service looks them up by the same keys.
# 2. *Features*: `DECLARATIONS`, one `Feature` each: an expression over one row of inputs (in the
#    small expression language of `data_platform.feature_expressions`, compiled to SQL for the
#    offline asset and to Python for the online service), its contract column and its use by the
#    model. The feature lists, the features contract, the column lineage and the inputs each source
#    must provide (hence the online store's relations) are derived from them.
#
# An input column's name says where it comes from: `p_<column>` is the flight's plane's <column> in
# cleaned.planes, `w_<column>` the matched origin weather observation's <column> in cleaned.weather,
# an aggregate's input (`AGGREGATES`) or `departures_in_hour` a matched relation's value, and any
# other name the flight's own column in cleaned.flights.

LOCAL_TIMEZONE = "America/New_York"  # the source's local time: year/month/day/hour/minute are NYC
HOLIDAYS_PARAM = "holidays"
PLANE_PREFIX, WEATHER_PREFIX = "p_", "w_"


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

CUTOFF = HoursBefore(Col("sched_dep_utc"), CUTOFF_HOURS)
# The matched observation counts only when it is at most WEATHER_MAX_AGE_HOURS older than the cut-off.
_FRESH = Col("w_observed_at") >= HoursBefore(CUTOFF, WEATHER_MAX_AGE_HOURS)
_OBSERVED = When(_FRESH, Col("w_observed_at"))
_DAY = Col("day")


@dataclass(frozen=True)
class Feature:
    """A column of features/flight_features, declared once: its expression over input columns, its
    contract column (SQL type, description, nullability, rules) and, for a model input, its `group`
    and whether the model encodes it as a category. Keys and bookkeeping columns have no group."""

    name: str
    expression: Expr
    column: contracts.Column
    group: str = ""
    categorical: bool = False


def _weather(name: str, description: str) -> Feature:
    return Feature(f"wx_{name}", When(_FRESH, Col(f"w_{name}")),
                   contracts.column("DOUBLE", f"Origin {description}, last observation before the cut-off."), "weather")


def _rate(name: str, numerator: str, denominator: str, description: str) -> Feature:
    return Feature(name, Ratio(Col(numerator), Col(denominator)), contracts.column(
        "DOUBLE", description + " Share with arr_delay > 15 of the completed flights that had arrived by day "
        "D's earliest cut-off; missing without history.", rules=[contracts.between(0.0, 1.0)]), "trailing")


def _count(name: str, value: str, description: str) -> Feature:
    return Feature(name, Coalesce(Col(value), Const(0)),
                   contracts.column("INTEGER", description, False, [contracts.at_least(0)]), "trailing")


_c, _between, _at_least, _greater_than = contracts.column, contracts.between, contracts.at_least, contracts.greater_than

DECLARATIONS: list[Feature] = [
    Feature("day", _DAY, contracts.partition_day("Partition: local scheduled departure date.")),
    Feature("carrier", Col("carrier"), _c("VARCHAR", "Two-letter carrier code (feature).", False), "route",
            categorical=True),
    Feature("flight", Col("flight"), _c("INTEGER", "Flight number (key, not a feature).", False)),
    Feature("origin", Col("origin"), _c("VARCHAR", "Origin airport (feature).", False), "route", categorical=True),
    Feature("dest", Col("dest"), _c("VARCHAR", "Destination airport (feature).", False), "route", categorical=True),
    Feature("tailnum", Col("tailnum"), _c("VARCHAR", "Plane tail number (not a feature); missing stays missing.")),
    Feature("sched_dep_utc", Col("sched_dep_utc"), _c("TIMESTAMPTZ", "Scheduled departure (UTC).", False)),
    Feature("cutoff_utc", CUTOFF, _c("TIMESTAMPTZ", "Prediction time: scheduled departure minus 2 hours (UTC).", False)),
    Feature("distance", Col("distance"), _c("DOUBLE", "Route distance in miles.", False, [_greater_than(0)]), "schedule"),
    Feature("sched_dep_hour", Col("hour"), _c("INTEGER", "Scheduled departure hour, local.", False, [_between(0, 23)]),
            "schedule"),
    Feature("sched_dep_minute_of_day", Col("hour") * 60 + Col("minute"),
            _c("INTEGER", "Scheduled departure, minutes after local midnight.", False, [_between(0, 1439)]), "schedule"),
    Feature("sched_arr_minute_of_day", (Col("sched_arr_time") // 100) * 60 + Col("sched_arr_time") % 100,
            _c("INTEGER", "Scheduled arrival, minutes after local midnight at destination.", rules=[_between(0, 1439)]),
            "schedule"),
    Feature("day_of_week", DatePart("isodow", _DAY),
            _c("INTEGER", "ISO day of week of the flight date (1 = Monday).", False, [_between(1, 7)]), "schedule"),
    Feature("day_of_year", DatePart("dayofyear", _DAY),
            _c("INTEGER", "Day of year of the flight date.", False, [_between(1, 366)]), "schedule"),
    Feature("month", DatePart("month", _DAY), _c("INTEGER", "Month of the flight date.", False, [_between(1, 12)]),
            "schedule"),
    Feature("days_to_holiday", DaysToNearest(_DAY, HOLIDAYS_PARAM),
            _c("INTEGER", "Days to the nearest US federal holiday (either side).", False, [_at_least(0)]), "schedule"),
    Feature("origin_departures_in_hour", Col("departures_in_hour"),
            _c("INTEGER", "Scheduled departures at the origin in the same local hour (published schedule, cancelled "
               "flights included).", False, [_greater_than(0)]), "schedule"),
    Feature("plane_age", DatePart("year", _DAY) - Col("p_year"),
            _c("INTEGER", "Flight year minus year manufactured; missing when unknown."), "plane"),
    Feature("plane_seats", Col("p_seats"),
            _c("INTEGER", "Seats of the plane; missing when the tailnum is unknown.", rules=[_greater_than(0)]), "plane"),
    Feature("plane_engines", Col("p_engines"), _c("INTEGER", "Number of engines; missing when the tailnum is unknown."),
            "plane"),
    Feature("plane_engine", Col("p_engine"), _c("VARCHAR", "Engine type; missing when the tailnum is unknown."),
            "plane", categorical=True),
    Feature("weather_observed_at", _OBSERVED,
            _c("TIMESTAMPTZ", "Time of the origin weather observation used: the last one at or before the cut-off, "
               "missing when older than 6 h.")),
    Feature("wx_temp", When(_FRESH, Col("w_temp")),
            _c("DOUBLE", "Origin temperature (°F) at the last observation before the cut-off."), "weather"),
    _weather("dewp", "dew point (°F)"),
    _weather("humid", "relative humidity (%)"),
    _weather("wind_dir", "wind direction (degrees)"),
    _weather("wind_speed", "wind speed (mph)"),
    _weather("wind_gust", "gust speed (mph)"),
    _weather("precip", "precipitation (in)"),
    _weather("pressure", "sea level pressure (mb)"),
    _weather("visib", "visibility (mi)"),
    Feature("wx_age_minutes", MinutesBetween(_OBSERVED, CUTOFF),
            _c("INTEGER", "Minutes between that observation and the cut-off.", rules=[_between(0, 360)]), "weather"),
    _rate("carrier_origin_delay_rate_7d", "tco_k", "tco_n", "Carrier x origin, days D-7..D-1."),
    _count("carrier_origin_flights_7d", "tco_n", "Completed carrier x origin flights in days D-7..D-1."),
    _rate("carrier_delay_rate_7d", "tc_k", "tc_n", "Carrier, days D-7..D-1."),
    _rate("origin_delay_rate_1d", "tor_k1", "tor_n1", "Origin, day D-1."),
    _rate("origin_delay_rate_7d", "tor_k7", "tor_n7", "Origin, days D-7..D-1."),
    Feature("origin_cancel_rate_1d", Ratio(Col("tor_c1"), Col("tor_s1")),
            _c("DOUBLE", "Cancelled share of the origin's day D-1 flights whose fate was known at day D's earliest "
               "cut-off (departed, or cancelled).", rules=[_between(0.0, 1.0)]), "trailing"),
    _rate("dest_delay_rate_7d", "td_k", "td_n", "Destination, days D-7..D-1."),
    _rate("flight_delay_rate_28d", "tf_k", "tf_n", "Same carrier, flight number and origin, days D-28..D-1."),
    _count("flight_flights_28d", "tf_n", "Completed flights of the same flight number in days D-28..D-1."),
]

# --- what derives from the declarations ---------------------------------------------------------

LABEL_COLUMN = contracts.column("BOOLEAN", f"Label: arrived more than {DELAY_MINUTES} minutes late "
                                f"(arr_delay > {DELAY_MINUTES}).", False)


def definitions(declarations: list[Feature]) -> dict[str, Expr]:
    return {feature.name: feature.expression for feature in declarations}


def _weather_known_at_cutoff(frame):
    """Per row: weather is never observed after the flight's cut-off (2 h before scheduled departure)."""
    observed = frame["weather_observed_at"]
    return observed.isna() | (observed <= frame["cutoff_utc"])


def _cutoff_two_hours_before(frame):
    """Per row: the cut-off is exactly 2 hours before the scheduled departure."""
    import pandas as pd

    return frame["sched_dep_utc"] - frame["cutoff_utc"] == pd.Timedelta(hours=CUTOFF_HOURS)


def table_contract(declarations: list[Feature]) -> contracts.TableContract:
    """The features table's contract: a column per declaration, then the label."""
    return contracts.TableContract(
        name="features.flight_features",
        description=(
            f"One row per completed flight: what is known {CUTOFF_HOURS} hours before scheduled departure, and the "
            f"label {LABEL} (arr_delay > {DELAY_MINUTES} min). Cancelled and diverted flights are excluded."
        ),
        unique=tuple(FLIGHT_KEY),
        frame_checks=(
            contracts.FrameCheck("weather_known_at_cutoff", "weather observed after the cut-off", _weather_known_at_cutoff),
            contracts.FrameCheck("cutoff_two_hours_before", "cut-off is not 2 h before scheduled departure",
                                 _cutoff_two_hours_before),
        ),
        columns={**{feature.name: feature.column for feature in declarations}, LABEL: LABEL_COLUMN},
    )


def input_columns(declarations: list[Feature]) -> list[str]:
    """Every input column the declarations read (each path must provide each one)."""
    return sorted(set().union(*(feature.expression.columns() for feature in declarations)))


def source_inputs(declarations: list[Feature]) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """The inputs read from the flight's own row, and {input: column} of the plane and of the weather
    observation (the observation's time always: it is how the observation is matched)."""
    names = input_columns(declarations)
    planes = {name: name[len(PLANE_PREFIX):] for name in names if name.startswith(PLANE_PREFIX)}
    weather = {f"{WEATHER_PREFIX}observed_at": "observed_at",
               **{name: name[len(WEATHER_PREFIX):] for name in names if name.startswith(WEATHER_PREFIX)}}
    matched = {*planes, *weather, *AGGREGATE_INPUTS, "departures_in_hour"}
    return [name for name in names if name not in matched], planes, weather


FEATURE_DEFINITIONS = definitions(DECLARATIONS)
FEATURE_INPUTS = input_columns(DECLARATIONS)
FLIGHT_INPUTS, PLANE_INPUTS, WEATHER_INPUTS = source_inputs(DECLARATIONS)
WEATHER_COLUMNS = [column for column in WEATHER_INPUTS.values() if column != "observed_at"]
CONTRACT = table_contract(DECLARATIONS)

_MODEL_INPUTS = [feature for feature in DECLARATIONS if feature.group]
CATEGORICAL_FEATURES = [feature.name for feature in _MODEL_INPUTS if feature.categorical]
NUMERICAL_FEATURES = [feature.name for feature in _MODEL_INPUTS if not feature.categorical]
SCHEDULE_FEATURES, PLANE_FEATURES, WEATHER_FEATURES, TRAILING_FEATURES = (
    [feature.name for feature in _MODEL_INPUTS if feature.group == group and not feature.categorical]
    for group in ("schedule", "plane", "weather", "trailing"))
FEATURES = CATEGORICAL_FEATURES + NUMERICAL_FEATURES


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


def _sources(target_days: str, history_last: str, plane_columns=PLANE_INPUTS.values()) -> str:
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
planes AS (SELECT {", ".join(["tailnum", *plane_columns])} FROM cleaned.planes),
weather AS (
    SELECT * FROM cleaned.weather WHERE day BETWEEN $first::DATE - 1 AND $last
)"""


def _aggregate_join(aggregate: Aggregate, alias: str) -> str:
    on = " AND ".join([f"{alias}.day = f.day", *(f"{alias}.{key} = f.{key}" for key in aggregate.keys)])
    return f"LEFT JOIN {aggregate.name} {alias} ON {on}"


def feature_query(declarations: list[Feature]) -> str:
    """The features of the flights of $first..$last, with the label, as the declarations say."""
    flight_inputs, plane_inputs, weather_inputs = source_inputs(declarations)
    return f"""
WITH {_sources("SELECT DISTINCT day FROM flights", "$last::DATE - 1", plane_inputs.values())},
-- the last origin observation at or before each flight's cut-off
matched_weather AS (
    SELECT f.day, f.carrier, f.flight, f.origin,
           {", ".join(f"w.{column} AS {name}" for name, column in weather_inputs.items())}
    FROM flights f ASOF LEFT JOIN weather w
      ON f.origin = w.origin AND f.cutoff_utc >= w.observed_at
),
inputs AS (
    SELECT {", ".join(f"f.{name}" for name in flight_inputs)}, f.arr_delay, f.cancelled, f.diverted,
           dh.n AS departures_in_hour,
           {"".join(f"p.{column} AS {name}, " for name, column in plane_inputs.items())}
           {", ".join(f"mw.{name}" for name in weather_inputs)},
           {", ".join(f"a{i}.{column} AS {name}" for i, a in enumerate(AGGREGATES) for name, column in a.inputs.items())}
    FROM flights f
    LEFT JOIN matched_weather mw USING (day, carrier, flight, origin)
    LEFT JOIN planes p ON p.tailnum = f.tailnum
    LEFT JOIN departures_in_hour dh ON dh.day = f.day AND dh.origin = f.origin AND dh.hour = f.hour
    {(os.linesep + "    ").join(_aggregate_join(a, f"a{i}") for i, a in enumerate(AGGREGATES))}
)
SELECT
    {select_list(definitions(declarations))},
    arr_delay > {DELAY_MINUTES} AS {LABEL}
FROM inputs
WHERE NOT cancelled AND NOT diverted
"""


FEATURE_QUERY = feature_query(DECLARATIONS)
# What a scoring request gives of the flight's own row; its other inputs are looked up in its
# published schedule (the online store's `schedule` relation).
REQUEST_INPUTS = ["day", "carrier", "flight", "origin", "dest", "tailnum", "sched_dep_utc", "hour", "minute"]
SCHEDULE_INPUTS = [name for name in FLIGHT_INPUTS if name not in REQUEST_INPUTS]

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
        "schedule": f"SELECT {', '.join(['day', 'carrier', 'flight', 'origin', 'dest', 'tailnum', *SCHEDULE_INPUTS])} FROM flights",
        "weather": f"SELECT day, origin, {', '.join(WEATHER_INPUTS.values())} FROM weather WHERE day BETWEEN $first AND $last",
        "planes": "SELECT * FROM planes",
        # A route's distance: the most common one in the range (two routes have two distances in 2013).
        "routes": "SELECT origin, dest, mode(distance ORDER BY distance DESC) AS distance FROM flights GROUP BY ALL",
    }.get(relation, f"SELECT * FROM {relation}")
    return f"WITH {sources}\n{body}"

"""Data contracts: one pandera schema per table, the single source of truth for its columns.

A contract gives each column its SQL type (from which the pandas dtype follows), a description,
nullability and value checks. The same object produces the DuckDB DDL, the `dagster/column_schema`
catalog metadata, the cleaning rules of the cleaned layer and the validation run by the contract
checks. Three kinds of rule live here:

* checks (`checks=`): a value that violates one is wrong, so the cleaned layer quarantines its row;
* plausibility (`plausible=`, `max_jump=`): a measurement outside physical limits, or an isolated
  jump away from both neighbouring observations, is a sensor glitch; the cleaned layer sets that one
  value to NULL, records it in the row's `nulled_values` and keeps the rest of the row;
* `max_null_rate=`: the share of NULLs a column may have in one partition (a quality check, WARN).
"""

from __future__ import annotations

import pandera.pandas as pa
from dagster import TableColumn, TableColumnConstraints, TableSchema

SQL_TO_PANDAS = {
    "VARCHAR": "str",
    "BIGINT": "Int64",
    "INTEGER": "Int64",
    "DOUBLE": "float64",
    "BOOLEAN": "boolean",
    "DATE": "datetime64[ns]",
    "TIMESTAMPTZ": "datetime64[ns, UTC]",
}

INTEGER_TEXT = r"^-?\d+$"
NUMBER_TEXT = r"^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$"
UTC_TEXT = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2})?(Z|[+-]00(:?00)?)?$"
CARRIER_TEXT = r"^[A-Z0-9]{2}$"
AIRPORT_TEXT = r"^[A-Z0-9]{3,4}$"
NYC_ORIGINS = ["EWR", "JFK", "LGA"]

# Title of the checks whose violation nulls the value (plausibility) instead of rejecting the row.
PLAUSIBLE = "plausible"
# The column every cleaned table with plausibility rules has: what was set to NULL and why.
NULLED_VALUES = "nulled_values"


def column(
    sql_type: str,
    description: str,
    nullable: bool = True,
    checks: list[pa.Check] | None = None,
    *,
    plausible: tuple[float, float] | None = None,
    max_jump: float | None = None,
    max_null_rate: float | None = None,
) -> pa.Column:
    """A contract column. `plausible=(low, high)` and `max_jump` are plausibility rules (see the
    module docstring); `max_null_rate` is the largest share of NULLs allowed in one partition."""
    checks = list(checks or [])
    metadata: dict = {"sql_type": sql_type}
    if plausible is not None:
        low, high = plausible
        checks.append(pa.Check.in_range(low, high, title=PLAUSIBLE, error=f"plausible range {low}..{high}"))
        metadata["plausible"] = (low, high)
    if max_jump is not None:
        metadata["max_jump"] = max_jump
    if max_null_rate is not None:
        metadata["max_null_rate"] = max_null_rate
    return pa.Column(
        SQL_TO_PANDAS[sql_type],
        checks=checks or None,
        nullable=nullable,
        coerce=True,
        description=description,
        metadata=metadata,
    )


def text(description: str, pattern: str | None = None, nullable: bool = True) -> pa.Column:
    """A raw column: text exactly as the source sent it, optionally expected to match a pattern."""
    checks = [pa.Check.str_matches(pattern)] if pattern else None
    return column("VARCHAR", description, nullable=nullable, checks=checks)


def ingestion_columns() -> dict[str, pa.Column]:
    return {
        "_source_uri": column("VARCHAR", "File or package resource the row was read from.", False),
        "_source_row": column("BIGINT", "Line of the row in its source file (1 = first data row).", False),
        "_ingested_at": column("TIMESTAMPTZ", "When the row was ingested (UTC).", False),
        "_run_id": column("VARCHAR", "Dagster run id that ingested the row.", False),
    }


def partition_day(description: str = "Partition: the local (America/New_York) date the source publishes.") -> pa.Column:
    return column("DATE", description, nullable=False)


# --- plausibility over time: isolated jumps ------------------------------------------------------

def isolated_jumps(frame, value: str, max_jump: float, group: str, time: str, max_gap_hours: float):
    """Boolean Series over `frame`: True where `value` jumps more than `max_jump` away from both the
    previous and the next non-null observation of its `group` (each at most `max_gap_hours` away)
    in the same direction: a spike, not a front passing through."""
    import pandas as pd

    flagged = pd.Series(False, index=frame.index)
    data = frame[[group, time, value]].dropna(subset=[value]).sort_values([group, time])
    if data.empty:
        return flagged
    by_group = data.groupby(group, sort=False)
    previous, following = by_group[value].shift(1), by_group[value].shift(-1)
    gap = pd.Timedelta(hours=max_gap_hours)
    near = ((data[time] - by_group[time].shift(1)) <= gap) & ((by_group[time].shift(-1) - data[time]) <= gap)
    rise = (data[value] - previous > max_jump) & (data[value] - following > max_jump)
    fall = (previous - data[value] > max_jump) & (following - data[value] > max_jump)
    flagged.loc[data.index] = (near & (rise | fall)).fillna(False).astype(bool)
    return flagged


def jump_checks(columns: dict[str, pa.Column], group: str, time: str, max_gap_hours: float) -> list[pa.Check]:
    """DataFrame-level checks for every column with `max_jump`: no isolated jumps remain."""
    checks = []
    for name, col in columns.items():
        limit = col.metadata.get("max_jump")
        if limit is None:
            continue
        checks.append(
            pa.Check(
                lambda frame, name=name, limit=limit: ~isolated_jumps(frame, name, limit, group, time, max_gap_hours),
                name=f"{name}_has_no_isolated_jump",
                title=PLAUSIBLE,
                error=f"{name} jumps more than {limit} from both neighbouring observations within {max_gap_hours} h",
                statistics={"column": name, "max_jump": limit, "group": group, "time": time,
                            "max_gap_hours": max_gap_hours},
            )
        )
    return checks


# --- raw: what the source sent, as text -------------------------------------------------------

RAW_FLIGHTS = pa.DataFrameSchema(
    name="raw.flights",
    description="Flights as the source sent them, one row per scheduled departure.",
    columns={
        "day": partition_day(),
        "year": text("Scheduled departure year (local time).", INTEGER_TEXT, nullable=False),
        "month": text("Scheduled departure month (local time).", INTEGER_TEXT, nullable=False),
        "day_of_month": text("Scheduled departure day of month (local time); the source's `day`.", INTEGER_TEXT, nullable=False),
        "dep_time": text("Actual departure time, local hhmm; missing when cancelled.", INTEGER_TEXT),
        "sched_dep_time": text("Scheduled departure time, local hhmm.", INTEGER_TEXT),
        "dep_delay": text("Departure delay in minutes (negative = early).", NUMBER_TEXT),
        "arr_time": text("Actual arrival time, local hhmm at destination.", INTEGER_TEXT),
        "sched_arr_time": text("Scheduled arrival time, local hhmm at destination.", INTEGER_TEXT),
        "arr_delay": text("Arrival delay in minutes; missing when cancelled or diverted.", NUMBER_TEXT),
        "carrier": text("Two-letter carrier code.", CARRIER_TEXT, nullable=False),
        "flight": text("Flight number.", INTEGER_TEXT, nullable=False),
        "tailnum": text("Plane tail number; missing for some flights."),
        "origin": text("Origin airport (FAA code).", AIRPORT_TEXT, nullable=False),
        "dest": text("Destination airport (FAA code).", AIRPORT_TEXT),
        "air_time": text("Minutes in the air.", NUMBER_TEXT),
        "distance": text("Distance between airports in miles.", NUMBER_TEXT),
        "hour": text("Scheduled departure hour (local).", INTEGER_TEXT),
        "minute": text("Scheduled departure minute (local).", INTEGER_TEXT),
        "time_hour": text("Scheduled departure hour as a UTC timestamp.", UTC_TEXT, nullable=False),
        **ingestion_columns(),
    },
)

RAW_WEATHER = pa.DataFrameSchema(
    name="raw.weather",
    description="Hourly weather at the three NYC origin airports as the source sent it.",
    columns={
        "day": partition_day(),
        "origin": text("Weather station (origin airport FAA code).", AIRPORT_TEXT, nullable=False),
        "year": text("Observation year (local time).", INTEGER_TEXT, nullable=False),
        "month": text("Observation month (local time).", INTEGER_TEXT, nullable=False),
        "day_of_month": text("Observation day of month (local time); the source's `day`.", INTEGER_TEXT, nullable=False),
        "hour": text("Observation hour (local time).", INTEGER_TEXT),
        "temp": text("Temperature in °F.", NUMBER_TEXT),
        "dewp": text("Dew point in °F.", NUMBER_TEXT),
        "humid": text("Relative humidity in %.", NUMBER_TEXT),
        "wind_dir": text("Wind direction in degrees.", NUMBER_TEXT),
        "wind_speed": text("Wind speed in mph.", NUMBER_TEXT),
        "wind_gust": text("Gust speed in mph.", NUMBER_TEXT),
        "precip": text("Precipitation in inches.", NUMBER_TEXT),
        "pressure": text("Sea level pressure in millibars.", NUMBER_TEXT),
        "visib": text("Visibility in miles.", NUMBER_TEXT),
        "time_hour": text("Observation hour as a UTC timestamp.", UTC_TEXT, nullable=False),
        **ingestion_columns(),
    },
)

RAW_AIRPORTS = pa.DataFrameSchema(
    name="raw.airports",
    description="Airport reference data as the source sent it.",
    unique=["faa"],
    columns={
        "faa": text("FAA airport code.", AIRPORT_TEXT, nullable=False),
        "name": text("Airport name."),
        "lat": text("Latitude.", NUMBER_TEXT),
        "lon": text("Longitude.", NUMBER_TEXT),
        "alt": text("Altitude in feet.", NUMBER_TEXT),
        "tz": text("Offset from GMT in hours.", NUMBER_TEXT),
        "dst": column("VARCHAR", "Daylight saving rule: A (US), U (unknown), N (none).",
                      checks=[pa.Check.isin(["A", "U", "N"])]),
        "tzone": text("IANA time zone."),
        **ingestion_columns(),
    },
)

RAW_AIRLINES = pa.DataFrameSchema(
    name="raw.airlines",
    description="Carrier codes and names as the source sent them.",
    unique=["carrier"],
    columns={
        "carrier": text("Two-letter carrier code.", CARRIER_TEXT, nullable=False),
        "name": text("Carrier name."),
        **ingestion_columns(),
    },
)

RAW_PLANES = pa.DataFrameSchema(
    name="raw.planes",
    description="Plane reference data (FAA registry) as the source sent it.",
    unique=["tailnum"],
    columns={
        "tailnum": text("Tail number.", nullable=False),
        "year": text("Year manufactured.", INTEGER_TEXT),
        "type": text("Type of plane."),
        "manufacturer": text("Manufacturer."),
        "model": text("Model."),
        "engines": text("Number of engines.", INTEGER_TEXT),
        "seats": text("Number of seats.", INTEGER_TEXT),
        "speed": text("Average cruising speed in mph; almost always missing.", INTEGER_TEXT),
        "engine": text("Type of engine."),
        **ingestion_columns(),
    },
)

# --- cleaned: typed, UTC timestamps, deduplicated ----------------------------------------------
# Checks quarantine the row; plausibility nulls the value. Null-rate limits are the largest daily
# share measured on the 2013 data with a margin: cancellations make dep_time & co. missing on up to
# 57.5 % of a day's flights (2013-02-08, a blizzard), tailnum on up to 24.6 %, pressure on up to
# 58.3 % of a day's observations; wind_gust is missing on whole calm days and has no limit.

# Measured maxima of the 2013 data are far inside these ranges (dep_delay 1301, arr_delay 1272,
# air_time 695, distance 4983 minutes or miles).
CLEANED_FLIGHTS = pa.DataFrameSchema(
    name="cleaned.flights",
    description="Typed flights, deduplicated on (carrier, flight, origin, day), with UTC schedule.",
    unique=["carrier", "flight", "origin", "day"],
    metadata={"quarantines": True},
    columns={
        "day": partition_day("Partition: local scheduled departure date."),
        "carrier": column("VARCHAR", "Two-letter carrier code.", False, [pa.Check.str_matches(CARRIER_TEXT)]),
        "flight": column("INTEGER", "Flight number.", False, [pa.Check.in_range(1, 9999)]),
        "origin": column("VARCHAR", "Origin airport (FAA code): one of the three NYC airports.", False,
                         [pa.Check.isin(NYC_ORIGINS)]),
        "dest": column("VARCHAR", "Destination airport (FAA code).", False, [pa.Check.str_matches(AIRPORT_TEXT)]),
        "tailnum": column("VARCHAR", "Plane tail number; missing for some flights.", max_null_rate=0.3),
        "sched_dep_utc": column("TIMESTAMPTZ", "Scheduled departure (UTC).", False),
        "sched_dep_time": column("INTEGER", "Scheduled departure, local hhmm.", False, [pa.Check.in_range(1, 2359)]),
        "sched_arr_time": column("INTEGER", "Scheduled arrival, local hhmm at destination.",
                                 checks=[pa.Check.in_range(1, 2359)], max_null_rate=0.05),
        "dep_time": column("INTEGER", "Actual departure, local hhmm; missing when cancelled.",
                           checks=[pa.Check.in_range(1, 2400)], max_null_rate=0.65),
        "arr_time": column("INTEGER", "Actual arrival, local hhmm; missing when cancelled or diverted.",
                           checks=[pa.Check.in_range(1, 2400)], max_null_rate=0.65),
        "dep_delay": column("DOUBLE", "Departure delay in minutes.",
                            checks=[pa.Check.in_range(-120, 2400)], max_null_rate=0.65),
        "arr_delay": column("DOUBLE", "Arrival delay in minutes; missing when cancelled or diverted.",
                            checks=[pa.Check.in_range(-180, 2400)], max_null_rate=0.65),
        "air_time": column("DOUBLE", "Minutes in the air.", checks=[pa.Check.in_range(1, 1000)], max_null_rate=0.65),
        "distance": column("DOUBLE", "Distance in miles.", False, [pa.Check.in_range(1, 6000)]),
        "hour": column("INTEGER", "Scheduled departure hour (local).", False, [pa.Check.in_range(0, 23)]),
        "minute": column("INTEGER", "Scheduled departure minute (local).", False, [pa.Check.in_range(0, 59)]),
        "cancelled": column("BOOLEAN", "True when the flight never departed (no dep_time).", False),
        "diverted": column("BOOLEAN", "True when it departed but has no arrival delay.", False),
    },
)

# Physical limits, not climate: the 2013 maxima are wind_speed 42.6 mph (plus one 1048 mph glitch),
# wind_gust 66.7, precip 1.21 in, pressure 983.8..1042.1 mb. The one isolated jump in the data is
# JFK 2013-05-09 02:00Z, temperature 13.1 °F and dew point 12.0 °F between readings of about 57 and
# 49..54 °F (44 °F away); the next largest isolated jumps are 9.9 °F (temp) and 12.1 °F (dewp).
WEATHER_SERIES = {"group": "origin", "time": "observed_at", "max_gap_hours": 3}
_WEATHER_COLUMNS = {
    "day": partition_day("Partition: local observation date."),
    "origin": column("VARCHAR", "Weather station (origin airport FAA code): one of the three NYC airports.", False,
                     [pa.Check.isin(NYC_ORIGINS)]),
    "observed_at": column("TIMESTAMPTZ", "Observation time (UTC).", False),
    "temp": column("DOUBLE", "Temperature in °F.", plausible=(-40, 130), max_jump=20, max_null_rate=0.1),
    "dewp": column("DOUBLE", "Dew point in °F.", plausible=(-60, 100), max_jump=20, max_null_rate=0.1),
    "humid": column("DOUBLE", "Relative humidity in %.", plausible=(0, 100), max_null_rate=0.1),
    "wind_dir": column("DOUBLE", "Wind direction in degrees.", plausible=(0, 360), max_null_rate=0.2),
    "wind_speed": column("DOUBLE", "Wind speed in mph.", plausible=(0, 150), max_null_rate=0.1),
    "wind_gust": column("DOUBLE", "Gust speed in mph; missing in calm hours.", plausible=(0, 200)),
    "precip": column("DOUBLE", "Precipitation in inches.", plausible=(0, 10), max_null_rate=0.1),
    "pressure": column("DOUBLE", "Sea level pressure in millibars.", plausible=(870, 1085), max_null_rate=0.65),
    "visib": column("DOUBLE", "Visibility in miles.", plausible=(0, 100), max_null_rate=0.1),
    NULLED_VALUES: column("VARCHAR", "Values of this row set to NULL as physically implausible, as "
                          "`column=value (rule)` joined by '; '; missing when none."),
}
CLEANED_WEATHER = pa.DataFrameSchema(
    name="cleaned.weather",
    description="Typed hourly weather per origin, keyed on the UTC observation time.",
    unique=["origin", "observed_at"],
    columns=_WEATHER_COLUMNS,
    checks=jump_checks(_WEATHER_COLUMNS, **WEATHER_SERIES),
    metadata={"series": WEATHER_SERIES, "quarantines": True},
)


def quarantine_contract(raw: pa.DataFrameSchema, table: str) -> pa.DataFrameSchema:
    """Rows of `raw` that could not be cleaned, with the reason and the run that rejected them.

    The raw columns keep their types and nullability but not their value checks: a quarantined row
    is exactly what broke them.
    """
    kept = {
        name: column(sql_type(col), col.description, col.nullable) for name, col in raw.columns.items()
    }
    return pa.DataFrameSchema(
        name=f"quarantine.{table}",
        description=f"Rows of {raw.name} that could not be cleaned, kept as received with the reason.",
        columns={
            **kept,
            "reason": column("VARCHAR", "Why the row was rejected; several reasons are joined by '; '.", False,
                             [pa.Check.str_length(min_value=1)]),
            "quarantine_run_id": column("VARCHAR", "Dagster run id that rejected the row.", False),
        },
    )


def sql_type(col: pa.Column) -> str:
    return col.metadata["sql_type"]


QUARANTINE_FLIGHTS = quarantine_contract(RAW_FLIGHTS, "flights")
QUARANTINE_WEATHER = quarantine_contract(RAW_WEATHER, "weather")

CONTRACTS: dict[str, pa.DataFrameSchema] = {
    schema.name: schema
    for schema in (
        RAW_FLIGHTS, RAW_WEATHER, RAW_AIRPORTS, RAW_AIRLINES, RAW_PLANES,
        CLEANED_FLIGHTS, CLEANED_WEATHER, QUARANTINE_FLIGHTS, QUARANTINE_WEATHER,
    )
}


# --- rules as SQL and as text ----------------------------------------------------------------

def sql_literal(value) -> str:
    """A literal from contract code (never from data or user input)."""
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


# One-sided built-in checks: the SQL comparison that breaks them, against which bound.
VIOLATED_BY = {
    "greater_than_or_equal_to": ("<", "min_value"),
    "greater_than": ("<=", "min_value"),
    "less_than_or_equal_to": (">", "max_value"),
    "less_than": (">=", "max_value"),
}


def violation_sql(check: pa.Check, value: str) -> str | None:
    """SQL that is true when `value` (an SQL expression) violates `check`; NULL never violates.

    Supports the built-in checks contracts use; None for anything else (such checks are still
    enforced by the contract check, but cannot drive cleaning).
    """
    stats = check.statistics or {}
    if check.name == "in_range":
        low = f"{value} {'<' if stats['include_min'] else '<='} {sql_literal(stats['min_value'])}"
        high = f"{value} {'>' if stats['include_max'] else '>='} {sql_literal(stats['max_value'])}"
        return f"({low} OR {high})"
    if check.name in VIOLATED_BY:
        operator, bound = VIOLATED_BY[check.name]
        return f"({value} {operator} {sql_literal(stats[bound])})"
    if check.name == "isin":
        return f"({value} NOT IN ({', '.join(sql_literal(v) for v in stats['allowed_values'])}))"
    if check.name == "str_matches":
        return f"(NOT regexp_matches({value}, {sql_literal(stats['pattern'])}))"
    return None


def rule_text(check: pa.Check) -> str:
    """A check as a short phrase for people (catalog constraints, quarantine reasons)."""
    stats = check.statistics or {}
    if check.name == "in_range":
        return f"between {stats['min_value']} and {stats['max_value']}"
    if check.name == "isin":
        return f"one of {', '.join(map(str, stats['allowed_values']))}"
    if check.name == "str_matches":
        return f"matches {stats['pattern']}"
    return check.error or check.name


def column_rules(col: pa.Column, quarantines: bool = False) -> list[str]:
    """Every rule on a column, in words, with what happens when it is broken."""
    broken = " (else row quarantined)" if quarantines else ""
    rules = [rule_text(c) + broken for c in col.checks if c.title != PLAUSIBLE]
    if "plausible" in col.metadata:
        low, high = col.metadata["plausible"]
        rules.append(f"plausible between {low} and {high} (else set to NULL, noted in {NULLED_VALUES})")
    if "max_jump" in col.metadata:
        rules.append(f"no isolated jump over {col.metadata['max_jump']} from both neighbouring observations "
                     f"(else set to NULL, noted in {NULLED_VALUES})")
    if "max_null_rate" in col.metadata:
        rules.append(f"at most {col.metadata['max_null_rate']:.0%} NULL per partition (else WARN)")
    return rules


def ddl(schema: pa.DataFrameSchema) -> str:
    """Column definitions for CREATE TABLE, in contract order."""
    return ", ".join(f'"{name}" {sql_type(col)}' for name, col in schema.columns.items())


def column_schema(schema: pa.DataFrameSchema) -> TableSchema:
    """The contract as Dagster catalog metadata (`dagster/column_schema`)."""
    unique = set(schema.unique or [])
    quarantines = bool((schema.metadata or {}).get("quarantines"))
    return TableSchema(
        columns=[
            TableColumn(
                name=name,
                type=sql_type(col),
                description=col.description,
                constraints=TableColumnConstraints(
                    nullable=col.nullable,
                    unique=col.unique,
                    other=column_rules(col, quarantines) + (["part of the unique key"] if name in unique else []),
                ),
            )
            for name, col in schema.columns.items()
        ]
    )

# --- features: point-in-time flight features with the label (see data_platform/assets/features.py)

def _rate(description: str) -> pa.Column:
    return column("DOUBLE", description + " Share of completed flights with arr_delay > 15; missing without history.",
                  checks=[pa.Check.in_range(0.0, 1.0)])


def _weather_known_at_cutoff(frame):
    """Per row: weather is never observed after the flight's cut-off (2 h before scheduled departure)."""
    observed = frame["weather_observed_at"]
    return observed.isna() | (observed <= frame["cutoff_utc"])


def _cutoff_two_hours_before(frame):
    """Per row: the cut-off is exactly 2 hours before the scheduled departure."""
    import pandas as pd

    return frame["sched_dep_utc"] - frame["cutoff_utc"] == pd.Timedelta(hours=2)


FEATURES = pa.DataFrameSchema(
    name="features.flight_features",
    description=(
        "One row per completed flight: what is known 2 hours before scheduled departure, and the label "
        "is_delayed (arr_delay > 15 min). Cancelled and diverted flights are excluded."
    ),
    unique=["day", "carrier", "flight", "origin"],
    checks=[
        pa.Check(_weather_known_at_cutoff, error="weather observed after the cut-off"),
        pa.Check(_cutoff_two_hours_before, error="cut-off is not 2 h before scheduled departure"),
    ],
    columns={
        "day": partition_day("Partition: local scheduled departure date."),
        "carrier": column("VARCHAR", "Two-letter carrier code (feature).", False),
        "flight": column("INTEGER", "Flight number (key, not a feature).", False),
        "origin": column("VARCHAR", "Origin airport (feature).", False),
        "dest": column("VARCHAR", "Destination airport (feature).", False),
        "tailnum": column("VARCHAR", "Plane tail number (not a feature); missing stays missing."),
        "sched_dep_utc": column("TIMESTAMPTZ", "Scheduled departure (UTC).", False),
        "cutoff_utc": column("TIMESTAMPTZ", "Prediction time: scheduled departure minus 2 hours (UTC).", False),
        "distance": column("DOUBLE", "Route distance in miles.", False, [pa.Check.gt(0)]),
        "sched_dep_hour": column("INTEGER", "Scheduled departure hour, local.", False, [pa.Check.in_range(0, 23)]),
        "sched_dep_minute_of_day": column("INTEGER", "Scheduled departure, minutes after local midnight.", False,
                                          [pa.Check.in_range(0, 1439)]),
        "sched_arr_minute_of_day": column("INTEGER", "Scheduled arrival, minutes after local midnight at destination.",
                                          checks=[pa.Check.in_range(0, 1439)]),
        "day_of_week": column("INTEGER", "ISO day of week of the flight date (1 = Monday).", False,
                              [pa.Check.in_range(1, 7)]),
        "day_of_year": column("INTEGER", "Day of year of the flight date.", False, [pa.Check.in_range(1, 366)]),
        "month": column("INTEGER", "Month of the flight date.", False, [pa.Check.in_range(1, 12)]),
        "days_to_holiday": column("INTEGER", "Days to the nearest US federal holiday (either side).", False,
                                  [pa.Check.ge(0)]),
        "origin_departures_in_hour": column("INTEGER", "Scheduled departures at the origin in the same local hour "
                                            "(published schedule, cancelled flights included).", False, [pa.Check.gt(0)]),
        "plane_age": column("INTEGER", "Flight year minus year manufactured; missing when unknown."),
        "plane_seats": column("INTEGER", "Seats of the plane; missing when the tailnum is unknown.", checks=[pa.Check.gt(0)]),
        "plane_engines": column("INTEGER", "Number of engines; missing when the tailnum is unknown."),
        "plane_engine": column("VARCHAR", "Engine type; missing when the tailnum is unknown."),
        "weather_observed_at": column("TIMESTAMPTZ", "Time of the origin weather observation used: the last one at "
                                      "or before the cut-off, missing when older than 6 h."),
        "wx_temp": column("DOUBLE", "Origin temperature (°F) at the last observation before the cut-off."),
        "wx_dewp": column("DOUBLE", "Origin dew point (°F), last observation before the cut-off."),
        "wx_humid": column("DOUBLE", "Origin relative humidity (%), last observation before the cut-off."),
        "wx_wind_dir": column("DOUBLE", "Origin wind direction (degrees), last observation before the cut-off."),
        "wx_wind_speed": column("DOUBLE", "Origin wind speed (mph), last observation before the cut-off."),
        "wx_wind_gust": column("DOUBLE", "Origin gust speed (mph), last observation before the cut-off."),
        "wx_precip": column("DOUBLE", "Origin precipitation (in), last observation before the cut-off."),
        "wx_pressure": column("DOUBLE", "Origin sea level pressure (mb), last observation before the cut-off."),
        "wx_visib": column("DOUBLE", "Origin visibility (mi), last observation before the cut-off."),
        "wx_age_minutes": column("INTEGER", "Minutes between that observation and the cut-off.",
                                 checks=[pa.Check.in_range(0, 360)]),
        "carrier_origin_delay_rate_7d": _rate("Carrier x origin, days D-7..D-1."),
        "carrier_origin_flights_7d": column("INTEGER", "Completed carrier x origin flights in days D-7..D-1.", False,
                                            [pa.Check.ge(0)]),
        "carrier_delay_rate_7d": _rate("Carrier, days D-7..D-1."),
        "origin_delay_rate_1d": _rate("Origin, day D-1."),
        "origin_delay_rate_7d": _rate("Origin, days D-7..D-1."),
        "origin_cancel_rate_1d": column("DOUBLE", "Share of cancelled departures at the origin on day D-1.",
                                        checks=[pa.Check.in_range(0.0, 1.0)]),
        "dest_delay_rate_7d": _rate("Destination, days D-7..D-1."),
        "flight_delay_rate_28d": _rate("Same carrier, flight number and origin, days D-28..D-1."),
        "flight_flights_28d": column("INTEGER", "Completed flights of the same flight number in days D-28..D-1.", False,
                                     [pa.Check.ge(0)]),
        "is_delayed": column("BOOLEAN", "Label: arrived more than 15 minutes late (arr_delay > 15).", False),
    },
)

CONTRACTS[FEATURES.name] = FEATURES


# --- ml: daily predictions of the champion model and its daily performance (data_platform/assets/ml.py)

PREDICTIONS = pa.DataFrameSchema(
    name="ml.delay_predictions",
    description="Probability that each completed flight arrives more than 15 minutes late, by the champion model.",
    unique=["day", "carrier", "flight", "origin"],
    columns={
        "day": partition_day("Partition: local scheduled departure date."),
        "carrier": column("VARCHAR", "Two-letter carrier code.", False),
        "flight": column("INTEGER", "Flight number.", False),
        "origin": column("VARCHAR", "Origin airport.", False),
        "probability": column("DOUBLE", "Predicted probability of arr_delay > 15.", False,
                              [pa.Check.in_range(0.0, 1.0)]),
        "model_name": column("VARCHAR", "Registered MLflow model name.", False),
        "model_version": column("VARCHAR", "Registered model version that scored the flight.", False),
    },
)

PERFORMANCE = pa.DataFrameSchema(
    name="ml.model_performance",
    description="Daily quality of the stored predictions against the labels of that day.",
    unique=["day"],
    columns={
        "day": partition_day("Partition: local scheduled departure date."),
        "model_version": column("VARCHAR", "Model version(s) that scored the day.", False),
        "flights": column("INTEGER", "Scored flights with a label.", False, [pa.Check.ge(0)]),
        "roc_auc": column("DOUBLE", "ROC AUC; missing when the day has one class only.", checks=[pa.Check.in_range(0.0, 1.0)]),
        "log_loss": column("DOUBLE", "Log loss.", checks=[pa.Check.ge(0.0)]),
        "brier": column("DOUBLE", "Brier score.", checks=[pa.Check.in_range(0.0, 1.0)]),
        "predicted_positive_rate": column("DOUBLE", "Mean predicted probability.", checks=[pa.Check.in_range(0.0, 1.0)]),
        "actual_positive_rate": column("DOUBLE", "Share of flights that arrived more than 15 min late.",
                                       checks=[pa.Check.in_range(0.0, 1.0)]),
    },
)

for _contract in (PREDICTIONS, PERFORMANCE):
    CONTRACTS[_contract.name] = _contract

"""Data contracts: one pandera schema per table, the single source of truth for its columns.

A contract gives each column its SQL type (from which the pandas dtype follows), a description,
nullability and value checks. The same object produces the DuckDB DDL, the `dagster/column_schema`
catalog metadata and the validation run by the contract checks.
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


def column(
    sql_type: str, description: str, nullable: bool = True, checks: list[pa.Check] | None = None
) -> pa.Column:
    return pa.Column(
        SQL_TO_PANDAS[sql_type],
        checks=checks,
        nullable=nullable,
        coerce=True,
        description=description,
        metadata={"sql_type": sql_type},
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
        "carrier": text("Two-letter carrier code.", nullable=False),
        "flight": text("Flight number.", INTEGER_TEXT, nullable=False),
        "tailnum": text("Plane tail number; missing for some flights."),
        "origin": text("Origin airport (FAA code).", nullable=False),
        "dest": text("Destination airport (FAA code)."),
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
        "origin": text("Weather station (origin airport FAA code).", nullable=False),
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
    columns={
        "faa": text("FAA airport code.", nullable=False),
        "name": text("Airport name."),
        "lat": text("Latitude.", NUMBER_TEXT),
        "lon": text("Longitude.", NUMBER_TEXT),
        "alt": text("Altitude in feet.", NUMBER_TEXT),
        "tz": text("Offset from GMT in hours.", NUMBER_TEXT),
        "dst": text("Daylight saving rule: A (US), U (unknown), N (none)."),
        "tzone": text("IANA time zone."),
        **ingestion_columns(),
    },
)

RAW_AIRLINES = pa.DataFrameSchema(
    name="raw.airlines",
    description="Carrier codes and names as the source sent them.",
    columns={
        "carrier": text("Two-letter carrier code.", nullable=False),
        "name": text("Carrier name."),
        **ingestion_columns(),
    },
)

RAW_PLANES = pa.DataFrameSchema(
    name="raw.planes",
    description="Plane reference data (FAA registry) as the source sent it.",
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

CLEANED_FLIGHTS = pa.DataFrameSchema(
    name="cleaned.flights",
    description="Typed flights, deduplicated on (carrier, flight, origin, day), with UTC schedule.",
    unique=["carrier", "flight", "origin", "day"],
    columns={
        "day": partition_day("Partition: local scheduled departure date."),
        "carrier": column("VARCHAR", "Two-letter carrier code.", False),
        "flight": column("INTEGER", "Flight number.", False),
        "origin": column("VARCHAR", "Origin airport (FAA code).", False),
        "dest": column("VARCHAR", "Destination airport (FAA code).", False),
        "tailnum": column("VARCHAR", "Plane tail number; missing for some flights."),
        "sched_dep_utc": column("TIMESTAMPTZ", "Scheduled departure (UTC).", False),
        "sched_dep_time": column("INTEGER", "Scheduled departure, local hhmm.", False),
        "sched_arr_time": column("INTEGER", "Scheduled arrival, local hhmm at destination."),
        "dep_time": column("INTEGER", "Actual departure, local hhmm; missing when cancelled."),
        "arr_time": column("INTEGER", "Actual arrival, local hhmm; missing when cancelled or diverted."),
        "dep_delay": column("DOUBLE", "Departure delay in minutes."),
        "arr_delay": column("DOUBLE", "Arrival delay in minutes; missing when cancelled or diverted."),
        "air_time": column("DOUBLE", "Minutes in the air."),
        "distance": column("DOUBLE", "Distance in miles.", False),
        "hour": column("INTEGER", "Scheduled departure hour (local).", False),
        "minute": column("INTEGER", "Scheduled departure minute (local).", False),
        "cancelled": column("BOOLEAN", "True when the flight never departed (no dep_time).", False),
        "diverted": column("BOOLEAN", "True when it departed but has no arrival delay.", False),
    },
)

CLEANED_WEATHER = pa.DataFrameSchema(
    name="cleaned.weather",
    description="Typed hourly weather per origin, keyed on the UTC observation time.",
    unique=["origin", "observed_at"],
    columns={
        "day": partition_day("Partition: local observation date."),
        "origin": column("VARCHAR", "Weather station (origin airport FAA code).", False),
        "observed_at": column("TIMESTAMPTZ", "Observation time (UTC).", False),
        "temp": column("DOUBLE", "Temperature in °F."),
        "dewp": column("DOUBLE", "Dew point in °F."),
        "humid": column("DOUBLE", "Relative humidity in %."),
        "wind_dir": column("DOUBLE", "Wind direction in degrees."),
        "wind_speed": column("DOUBLE", "Wind speed in mph."),
        "wind_gust": column("DOUBLE", "Gust speed in mph."),
        "precip": column("DOUBLE", "Precipitation in inches."),
        "pressure": column("DOUBLE", "Sea level pressure in millibars."),
        "visib": column("DOUBLE", "Visibility in miles."),
    },
)


def quarantine_contract(raw: pa.DataFrameSchema, table: str) -> pa.DataFrameSchema:
    """Rows of `raw` that could not be cleaned, with the reason and the run that rejected them."""
    return pa.DataFrameSchema(
        name=f"quarantine.{table}",
        description=f"Rows of {raw.name} that could not be cleaned, kept as received with the reason.",
        columns={
            **raw.columns,
            "reason": column("VARCHAR", "Why the row was rejected; several reasons are joined by '; '.", False),
            "quarantine_run_id": column("VARCHAR", "Dagster run id that rejected the row.", False),
        },
    )


QUARANTINE_FLIGHTS = quarantine_contract(RAW_FLIGHTS, "flights")
QUARANTINE_WEATHER = quarantine_contract(RAW_WEATHER, "weather")

CONTRACTS: dict[str, pa.DataFrameSchema] = {
    schema.name: schema
    for schema in (
        RAW_FLIGHTS, RAW_WEATHER, RAW_AIRPORTS, RAW_AIRLINES, RAW_PLANES,
        CLEANED_FLIGHTS, CLEANED_WEATHER, QUARANTINE_FLIGHTS, QUARANTINE_WEATHER,
    )
}


def sql_type(col: pa.Column) -> str:
    return col.metadata["sql_type"]


def ddl(schema: pa.DataFrameSchema) -> str:
    """Column definitions for CREATE TABLE, in contract order."""
    return ", ".join(f'"{name}" {sql_type(col)}' for name, col in schema.columns.items())


def column_schema(schema: pa.DataFrameSchema) -> TableSchema:
    """The contract as Dagster catalog metadata (`dagster/column_schema`)."""
    unique = set(schema.unique or [])
    return TableSchema(
        columns=[
            TableColumn(
                name=name,
                type=sql_type(col),
                description=col.description,
                constraints=TableColumnConstraints(
                    nullable=col.nullable,
                    unique=col.unique,
                    other=[c.error or c.name for c in col.checks]
                    + (["part of the unique key"] if name in unique else []),
                ),
            )
            for name, col in schema.columns.items()
        ]
    )

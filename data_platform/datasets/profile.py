"""The platform profile: the fixed `customProperties` names a contract may use, and their shapes.

ODCS says what the data is; these say what the platform does with it. Every value is checked
against its JSON Schema below (unknown names and misspelled keys are errors), then `load.py`
checks what a schema cannot (dates, time zones, column names, SQL expressions).
"""

from __future__ import annotations

NUMBER = {"type": "number"}
HOURS = {"type": "number", "minimum": 0}
DATE_TEXT = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
NAME = {"type": "string", "pattern": r"^[a-z][a-z0-9_]*$"}
BOUNDS = {"type": "array", "items": NUMBER, "minItems": 2, "maxItems": 2}


def object_schema(properties: dict, required: tuple = ()) -> dict:
    return {"type": "object", "properties": properties, "required": list(required), "additionalProperties": False}


# On the schema object (the dataset's table); each check kind adds the property it reads
# (data_platform/checks/kinds/: `volume`, `drift`, ...).
SCHEMA_PROPERTIES = {
    "source": object_schema(
        {
            "type": {"enum": ["landing", "file", "package"],
                     "description": "landing: a folder of one file per partition below DATA_PLATFORM_LANDING_DIR; "
                                    "file: one file; package: a file shipped in an installed Python package"},
            "path": {"type": "string", "minLength": 1},
            "package": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"},
            "format": {"enum": ["csv", "parquet"]},
        },
        required=("type",),
    ),
    "partitioning": object_schema(
        {
            "cadence": {"enum": ["daily"]},
            "start": DATE_TEXT,
            "end": DATE_TEXT,
            "timezone": {"type": "string", "minLength": 1},
            "column": NAME,
            "expression": {"type": "string", "minLength": 1},
        },
        required=("cadence", "start"),
    ),
    "plausibilitySeries": object_schema({"group": NAME, "time": NAME, "maxGapHours": HOURS},
                                         required=("group", "time", "maxGapHours")),
    "freshnessLagHours": object_schema({"raw": HOURS, "cleaned": HOURS}),
    "sampleBy": {"type": "array", "items": NAME, "minItems": 1},
}

# On a property (a column).
PROPERTY_PROPERTIES = {
    "sourceName": {"type": "string", "minLength": 1},
    "plausibleRange": BOUNDS,
    "maxJump": {"type": "number", "exclusiveMinimum": 0},
    "allowExponent": {"type": "boolean"},
}

# On a property-level relationship (a reference to another dataset).
RELATIONSHIP_PROPERTIES = {
    "maxUnknownShare": {"type": "number", "minimum": 0, "maximum": 1},
    "severity": {"enum": ["warn", "error"]},
}

LEVELS = {"schema": SCHEMA_PROPERTIES, "property": PROPERTY_PROPERTIES, "relationship": RELATIONSHIP_PROPERTIES}

# ODCS logical types and the DuckDB types each may be stored as (first = default).
PHYSICAL_TYPES = {
    "string": ("VARCHAR",),
    "integer": ("INTEGER", "BIGINT", "SMALLINT"),
    "number": ("DOUBLE",),
    "boolean": ("BOOLEAN",),
    "date": ("DATE",),
    "timestamp": ("TIMESTAMPTZ", "TIMESTAMP"),
}
INTEGER_FORMATS = {"i16": "SMALLINT", "i32": "INTEGER", "i64": "BIGINT"}

# SQL spellings other ODCS tools write for physicalType (lower case, without a length) and the
# type each is stored as. FLOAT and REAL are stored as DOUBLE, which holds every such value exactly.
PHYSICAL_SPELLINGS = {
    **{name: "VARCHAR" for name in ("varchar", "text", "string", "char", "character varying", "nvarchar")},
    **{name: "INTEGER" for name in ("integer", "int", "int4", "int32")},
    **{name: "BIGINT" for name in ("bigint", "int8", "int64", "long")},
    **{name: "SMALLINT" for name in ("smallint", "int2", "int16")},
    **{name: "DOUBLE" for name in ("double", "double precision", "float", "float8", "float4", "real")},
    **{name: "BOOLEAN" for name in ("boolean", "bool")},
    "date": "DATE",
    **{name: "TIMESTAMP" for name in ("timestamp", "datetime", "timestamp without time zone")},
    **{name: "TIMESTAMPTZ" for name in ("timestamptz", "timestamp with time zone")},
}

# The partition column every partitioned table has; a contract may declare it (`partitioned: true`).
PARTITION_COLUMN = "day"

# Names a dataset's columns cannot take: the engine's own columns.
RESERVED_COLUMNS = {"day", "reason", "quarantine_run_id", "nulled_values", "duplicate_rank"}

# JDK DateTimeFormatter letters (ODCS `logicalTypeOptions.format`) and their strptime codes.
JDK_TO_STRPTIME = {
    "yyyy": "%Y", "yy": "%y", "MMMM": "%B", "MMM": "%b", "MM": "%m", "dd": "%d", "DDD": "%j",
    "HH": "%H", "hh": "%I", "mm": "%M", "ss": "%S", "SSSSSS": "%f", "a": "%p", "EEE": "%a", "XXX": "%z",
}
STRPTIME_TO_JDK = {code: letters for letters, code in JDK_TO_STRPTIME.items()}

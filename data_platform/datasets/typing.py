"""Lossless typing in SQL: a source text either converts exactly to its column's type or is refused.

DuckDB's casts round and reinterpret (`TRY_CAST('7001.5' AS INTEGER)` is 7002, `'1e3'` is 1000,
`'0x1F'` is 31), so every type first checks that the text is written the way the contract allows,
then converts. `typed_value` gives the value (NULL when refused), `type_problem` the reason.
"""

from __future__ import annotations

from data_platform.contracts import sql_literal
from data_platform.datasets.model import (
    BOOLEAN_TEXT,
    DECIMAL_TEXT,
    EXPONENT_TEXT,
    INTEGER_TEXT,
    ISO_TIMESTAMP_TEXT,
    Property,
)

OFFSET_TEXT = r"(Z|[+-][0-9]{2}(:?[0-9]{2})?)$"
INTEGER_TYPES = ("INTEGER", "BIGINT", "SMALLINT")
TIME_TYPES = ("DATE", "TIMESTAMP", "TIMESTAMPTZ")


def _written(prop: Property, text: str) -> str | None:
    """SQL that is true when the text is written as the contract allows (None: any text)."""
    if prop.sql_type in INTEGER_TYPES:
        pattern = INTEGER_TEXT
    elif prop.sql_type == "DOUBLE":
        pattern = EXPONENT_TEXT if prop.allow_exponent else DECIMAL_TEXT
    elif prop.sql_type == "BOOLEAN":
        pattern = BOOLEAN_TEXT
    elif prop.sql_type in TIME_TYPES and prop.time_format is None:
        pattern = ISO_TIMESTAMP_TEXT
    else:
        return None
    return f"regexp_matches({text}, {sql_literal(pattern)})"


def _converted(prop: Property, text: str) -> str:
    """The value, assuming the text is written as allowed (NULL when it still does not convert)."""
    kind = prop.sql_type
    if kind in INTEGER_TYPES:
        # '517.0' is exact (pandas writes integers with missing values that way); the rest is not.
        return f"TRY_CAST(regexp_replace({text}, '\\.0*$', '') AS {kind})"
    if kind == "DOUBLE":
        return f"TRY_CAST({text} AS DOUBLE)"
    if kind == "BOOLEAN":
        return f"(lower({text}) = 'true')"
    if prop.time_format is not None:
        fmt = sql_literal(prop.time_format)
        # A parse is exact only if printing the value back gives the text (no lenient field widths).
        parsed = f"try_strptime({text}, {fmt})"
        exact = f"CASE WHEN strftime({parsed}, {fmt}) = {text} THEN {parsed} END"
        if kind == "DATE":
            return f"CAST({exact} AS DATE)"
        if kind == "TIMESTAMP" or "%z" in prop.time_format:
            return f"CAST({exact} AS {kind})"
        return f"timezone({sql_literal(prop.time_zone)}, CAST({exact} AS TIMESTAMP))"
    if kind == "DATE":
        return f"TRY_CAST({text} AS DATE)"
    if kind == "TIMESTAMP":
        return f"TRY_CAST({text} AS TIMESTAMP)"
    return (f"CASE WHEN regexp_matches({text}, {sql_literal(OFFSET_TEXT)}) THEN TRY_CAST({text} AS TIMESTAMPTZ) "
            f"ELSE timezone({sql_literal(prop.time_zone)}, TRY_CAST({text} AS TIMESTAMP)) END")


def typed_value(prop: Property, text: str) -> str:
    """SQL for the typed value of source text `text` (an SQL expression); NULL when not exact."""
    if prop.sql_type == "VARCHAR":
        return text
    written = _written(prop, text)
    converted = _converted(prop, text)
    return f"CASE WHEN {written} THEN {converted} END" if written else converted


def type_problem(prop: Property, text: str, value: str) -> str:
    """SQL for the reason a non-NULL text was refused (NULL when it typed exactly)."""
    if prop.sql_type == "VARCHAR":
        return "NULL"
    how = {
        "INTEGER": "a whole number without fraction, exponent or other notation, in range",
        "BIGINT": "a whole number without fraction, exponent or other notation, in range",
        "SMALLINT": "a whole number without fraction, exponent or other notation, in range",
        "DOUBLE": "a decimal number" + (" (exponent allowed)" if prop.allow_exponent else " without exponent or other notation"),
        "BOOLEAN": "true or false",
    }.get(prop.sql_type)
    if how is None:
        how = f"written {prop.time_format}, in range" if prop.time_format else "ISO 8601, in range"
    name = sql_literal(prop.name)
    return (f"CASE WHEN {text} IS NOT NULL AND {value} IS NULL THEN {name} || ': ' || {text} || "
            f"{sql_literal(' is not a valid ' + prop.sql_type + ' (' + how + ')')} END")

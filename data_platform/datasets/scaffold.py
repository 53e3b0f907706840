"""`dataset new` and `dataset check`: from a sample file to a draft contract, and validation of contracts.

`new_contract` reads a CSV or Parquet file with DuckDB (types from its CSV sniffer over the whole
file), measures what the file shows (NULLs, unique columns, numeric ranges, the values of
low-cardinality text, the date range of the partition column) and writes `<name>.odcs.yaml` into
`settings.user_datasets_dir()` with a source that reads the file and `# REVIEW` comments where a
person must decide. The draft is what the file shows, not what the data means: it passes
`dataset check` and materializes as written, and a person makes it true.

`check_contracts` validates contracts the way the code location does (each file, then the set)
and says OK per dataset or lists every problem as `file:line: where: message`.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, TextIO

from data_platform import settings
from data_platform.datasets.load import IDENTIFIER, SOURCE_NAME, SUFFIX, ContractError, Problem, jdk_format
from data_platform.datasets.model import BOOLEAN_TEXT, DECIMAL_TEXT, EXPONENT_TEXT, INTEGER_TEXT, ISO_TIMESTAMP_TEXT
from data_platform.datasets.profile import PARTITION_COLUMN, RESERVED_COLUMNS

FORMATS = {".csv": "csv", ".parquet": "parquet", ".zip": "csv"}
TIME_CODES = ("%H", "%I", "%M", "%S", "%f", "%p", "%z")
MAX_ALLOWED_VALUES = 20     # text columns with at most this many distinct values get an allowed-values rule
MAX_KEY_COLUMNS = 3         # key candidates: one column, or a set of up to this many
KEY_CANDIDATE_COLUMNS = 12  # columns considered for multi-column keys (those with the fewest NULLs first)
INT32 = (-(2 ** 31), 2 ** 31 - 1)


class ScaffoldError(Exception):
    """The draft cannot be written; the message says why and what to do."""


@dataclass
class Column:
    source: str                  # name in the file
    name: str                    # column name in the contract
    logical: str                 # ODCS logicalType
    nulls: int = 0
    distinct: int = 0
    low: Optional[float] = None
    high: Optional[float] = None
    values: list = field(default_factory=list)   # allowed values of low-cardinality text
    options: dict = field(default_factory=dict)  # logicalTypeOptions
    custom: list = field(default_factory=list)   # (property, value) custom properties
    notes: list = field(default_factory=list)    # REVIEW comments


# --- the source: where the file is and how a contract reads it -------------------------------------

def _package_of(path: Path) -> Optional[tuple[str, str]]:
    """(import name, path inside the package) when `path` lies inside an installed top-level package."""
    for ancestor in path.parents:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", ancestor.name):
            continue
        try:
            spec = importlib.util.find_spec(ancestor.name)
        except (ImportError, ValueError):
            continue
        if spec is not None and spec.origin and Path(spec.origin).resolve().parent == ancestor:
            return ancestor.name, path.relative_to(ancestor).as_posix()
    return None


def _inside(path: Path, root: Path) -> bool:
    root = root.resolve()
    return path == root or root in path.parents


def source_value(path: Path, folder: Path) -> dict:
    """The contract's `source` for a file: a package file, or a file the engine may read."""
    fmt = FORMATS[path.suffix]
    package = _package_of(path)
    if package is not None:
        return {"type": "package", "package": package[0], "path": package[1], "format": fmt}
    if _inside(path, folder):
        return {"type": "file", "path": path.relative_to(folder.resolve()).as_posix(), "format": fmt}
    roots = [settings.data_home()] + ([Path(settings.landing_dir())] if settings.landing_dir() else [])
    if any(_inside(path, root) for root in roots):
        return {"type": "file", "path": str(path), "format": fmt}
    raise ScaffoldError(
        f"{path} is outside the folders a contract may read: the contract's folder ({folder}), "
        f"DATA_PLATFORM_HOME ({settings.data_home()}) and DATA_PLATFORM_LANDING_DIR "
        f"({settings.landing_dir() or 'not set'}), and not inside an installed Python package. "
        "Copy the file into one of them, or set DATA_PLATFORM_LANDING_DIR to its folder."
    )


# --- measuring the file ---------------------------------------------------------------------------

def _column_name(source: str, taken: set[str]) -> str:
    name = re.sub(r"[^0-9a-z]+", "_", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", source).lower()).strip("_")
    if not name or not name[0].isalpha():
        name = f"c_{name}".rstrip("_")
    name = name[:55]
    if name in RESERVED_COLUMNS:
        name = f"{name}_value"
    base, n = name, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _margin(low: float, high: float, integer: bool) -> tuple[float, float]:
    """A range around what the file shows: 10% of the spread either side (1% of the value, at least 1,
    for a constant column), not below zero for data that is never negative, rounded outwards."""
    spread = high - low
    # A constant column (a year, a unit code): a small margin around its one value.
    pad = spread * 0.1 if spread else max(abs(high) * 0.01, 1.0)
    spread = spread or pad * 10
    lo, hi = low - pad, high + pad
    if low >= 0:
        lo = max(lo, 0)
    if integer:
        return math.floor(lo), math.ceil(hi)
    digits = max(0, 2 - int(math.floor(math.log10(spread))))
    factor = 10 ** digits
    return math.floor(lo * factor) / factor, math.ceil(hi * factor) / factor


def _reader(path: Path, fmt: str) -> tuple[str, str]:
    """SQL reading the file with types sniffed, and as the engine reads it (text)."""
    if fmt == "parquet":
        return "read_parquet(?)", "read_parquet(?)"
    common = "header = true, delim = ',', quote = '\"', escape = '\"', nullstr = ['', 'NA']"
    return f"read_csv(?, {common}, sample_size = -1)", f"read_csv(?, {common}, all_varchar = true)"


def _logical(duck_type: str) -> str:
    duck_type = duck_type.upper()
    if duck_type in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT",
                     "HUGEINT"):
        return "integer"
    if duck_type in ("FLOAT", "DOUBLE", "REAL") or duck_type.startswith("DECIMAL"):
        return "number"
    if duck_type == "BOOLEAN":
        return "boolean"
    if duck_type == "DATE":
        return "date"
    if duck_type.startswith("TIMESTAMP"):
        return "timestamp"
    return "string"


def measure(conn, path: Path, fmt: str, time_column: Optional[str], time_format: Optional[str]) -> tuple[list[Column], int]:
    typed_sql, text_sql = _reader(path, fmt)
    try:
        described = conn.execute(f"DESCRIBE SELECT * FROM {typed_sql}", [str(path)]).fetchall()
        rows = conn.execute(f"SELECT count(*) FROM {typed_sql}", [str(path)]).fetchone()[0]
    except Exception as error:  # duckdb.Error: the file is not readable as CSV/Parquet
        raise ScaffoldError(f"{path}: DuckDB cannot read it as {fmt} ({str(error).splitlines()[0]})") from None
    if not rows:
        raise ScaffoldError(f"{path}: no data rows; a draft needs a sample to measure")
    sources = [row[0] for row in described]
    if fmt == "csv" and len(sources) == 1:
        delimiter = conn.execute("SELECT delimiter FROM sniff_csv(?)", [str(path)]).fetchone()[0]
        if delimiter != ",":
            raise ScaffoldError(f"{path}: the platform reads comma-separated files; this one is separated by "
                                f"{delimiter!r}: convert it (e.g. with DuckDB's COPY ... TO (FORMAT csv))")
    if time_column is not None and time_column not in sources:
        raise ScaffoldError(f"--time-column {time_column!r} is not a column of {path}; columns: {', '.join(sources)}")
    for source in sources:
        if not SOURCE_NAME.match(source) or '"' in source:
            raise ScaffoldError(f"{path}: column name {source!r} cannot be read by the platform "
                                f"(source names must match {SOURCE_NAME.pattern}); rename it in the file")
    conn.execute(f"CREATE OR REPLACE TEMP TABLE sample_typed AS SELECT * FROM {typed_sql}", [str(path)])
    if fmt == "parquet":
        casts = ", ".join(f"CAST({_quoted(s)} AS VARCHAR) AS {_quoted(s)}" for s in sources)
        conn.execute(f"CREATE OR REPLACE TEMP TABLE sample_text AS SELECT {casts} FROM {text_sql}", [str(path)])
    else:
        conn.execute(f"CREATE OR REPLACE TEMP TABLE sample_text AS SELECT * FROM {text_sql}", [str(path)])

    taken: set[str] = set()
    columns = []
    for source, duck_type, *_ in described:
        column = Column(source, _column_name(source, taken), _logical(duck_type))
        q = _quoted(source)
        column.nulls, column.distinct = conn.execute(
            f"SELECT count(*) - count({q}), count(DISTINCT {q}) FROM sample_text").fetchone()
        if source == time_column:
            _time_column(conn, column, time_format, path)
        else:
            _typed_column(conn, column, duck_type)
        if column.name != source:
            column.notes.append(f"named {column.name} from the file's {source!r} (sourceName)")
            column.custom.insert(0, ("sourceName", source))
        columns.append(column)
    return columns, rows


def _count_not_matching(conn, source: str, pattern: str) -> int:
    q = _quoted(source)
    return conn.execute(f"SELECT count(*) FROM sample_text WHERE {q} IS NOT NULL AND NOT regexp_matches({q}, ?)",
                        [pattern]).fetchone()[0]


def _typed_column(conn, column: Column, duck_type: str) -> None:
    """Check the sniffed type against the exact text the engine accepts; fall back to text when not."""
    q = _quoted(column.source)
    if column.logical == "integer":
        if _count_not_matching(conn, column.source, INTEGER_TEXT):
            column.logical = "string"
        else:
            low, high = conn.execute(f"SELECT min({q}), max({q}) FROM sample_typed").fetchone()
            column.low, column.high = low, high
            if low is not None and (low < INT32[0] or high > INT32[1]):
                column.options["format"] = "i64"
    elif column.logical == "number":
        if _count_not_matching(conn, column.source, DECIMAL_TEXT):
            if _count_not_matching(conn, column.source, EXPONENT_TEXT):
                column.logical = "string"
            else:
                column.custom.append(("allowExponent", True))
                column.notes.append("some values are written with an exponent (1e-05): allowExponent is on")
        if column.logical == "number":
            column.low, column.high = conn.execute(
                f"SELECT min(CAST({q} AS DOUBLE)), max(CAST({q} AS DOUBLE)) FROM sample_typed").fetchone()
    elif column.logical == "boolean":
        if _count_not_matching(conn, column.source, BOOLEAN_TEXT):
            column.logical = "string"
    elif column.logical == "date":
        bad = conn.execute(
            f"SELECT count(*) FROM sample_text WHERE {q} IS NOT NULL AND "
            f"strftime(try_strptime({q}, '%Y-%m-%d'), '%Y-%m-%d') IS DISTINCT FROM {q}").fetchone()[0]
        if bad:
            column.logical = "string"
            column.notes.append("looks like a date but is not written YYYY-MM-DD: kept as text; to type it, "
                                "give it a logicalTypeOptions.format (JDK pattern, e.g. dd/MM/yyyy)")
    elif column.logical == "timestamp":
        if _count_not_matching(conn, column.source, ISO_TIMESTAMP_TEXT):
            column.logical = "string"
            column.notes.append("looks like a timestamp but is not ISO 8601: kept as text; to type it, give it "
                                "a logicalTypeOptions.format (JDK pattern)")
        else:
            column.notes.append("timestamps without an offset are read as UTC: set logicalTypeOptions."
                                "defaultTimezone (e.g. America/New_York) if they are local times")
    if column.logical == "string" and duck_type.upper() != "VARCHAR":
        column.notes.append(f"DuckDB reads it as {duck_type}, but " + (
            "not every value is written the way the platform types it exactly" if _logical(duck_type) != "string"
            else "the platform has no such type") + ": kept as text")
    if column.logical == "string" and column.distinct and column.distinct <= MAX_ALLOWED_VALUES:
        count = conn.execute("SELECT count(*) FROM sample_text").fetchone()[0]
        if column.distinct * 2 <= count:
            column.values = [row[0] for row in conn.execute(
                f"SELECT DISTINCT {q} FROM sample_text WHERE {q} IS NOT NULL ORDER BY 1").fetchall()]


def _time_column(conn, column: Column, time_format: Optional[str], path: Path) -> None:
    """The partition column: a date (or a timestamp when the format has a time of day)."""
    q = _quoted(column.source)
    if column.nulls:
        raise ScaffoldError(f"{path}: the time column {column.source!r} is empty in {column.nulls} row(s); every row "
                            "needs a date to belong to a partition (the platform refuses such a file)")
    if time_format is None:
        if column.logical not in ("date", "timestamp"):
            sample = conn.execute(f"SELECT {q} FROM sample_text LIMIT 1").fetchone()[0]
            raise ScaffoldError(f"the time column {column.source!r} is not written as an ISO date (e.g. {sample!r}): "
                                "give its format with --time-format, in strptime codes (e.g. %Y/%m/%d)")
        if column.logical == "date":
            time_format = "%Y-%m-%d"
        else:
            column.notes.append("the partition is the column's date in the partitioning timezone")
            return _time_range(conn, column, f"CAST(TRY_CAST({q} AS TIMESTAMP) AS DATE)")
    try:
        column.options["format"] = jdk_format(time_format)
    except ValueError as error:
        raise ScaffoldError(f"--time-format: {error}") from None
    column.logical = "timestamp" if any(code in time_format for code in TIME_CODES) else "date"
    parsed = f"try_strptime({q}, ?)"
    bad = conn.execute(f"SELECT count(*), any_value({q}) FROM sample_text WHERE strftime({parsed}, ?) IS DISTINCT FROM {q}",
                       [time_format, time_format]).fetchone()
    if bad[0]:
        raise ScaffoldError(f"the time column {column.source!r} does not follow --time-format {time_format!r} exactly "
                            f"in {bad[0]} row(s), e.g. {bad[1]!r}; every row needs a date to belong to a partition")
    if column.options["format"] == "yyyy-MM-dd":
        del column.options["format"]  # the platform's default for dates
    column.notes.append(f"the partition column: written {time_format} (strptime), the ODCS format is in JDK letters")
    _time_range(conn, column, f"CAST({parsed} AS DATE)", [time_format])


def _time_range(conn, column: Column, day_sql: str, params: Optional[list] = None) -> None:
    column.low, column.high = conn.execute(f"SELECT min({day_sql}), max({day_sql}) FROM sample_text",
                                           (params or []) * 2).fetchone()


def key_candidates(conn, columns: list[Column]) -> list[tuple[Column, ...]]:
    """Columns (or small sets, fewest columns first) without NULLs whose values are unique over the file.
    Numbers with fractions are left out: a unique measurement is a coincidence, not a key."""
    eligible = [c for c in columns if not c.nulls and c.logical != "number"]
    rows = conn.execute("SELECT count(*) FROM sample_text").fetchone()[0]
    single = [(c,) for c in eligible if c.distinct == rows]
    if single:
        return single
    from itertools import combinations

    pool = sorted(eligible, key=lambda c: -c.distinct)[:KEY_CANDIDATE_COLUMNS]
    for size in range(2, MAX_KEY_COLUMNS + 1):
        sets = list(combinations(pool, size))
        if not sets:
            break
        counts = conn.execute("SELECT " + ", ".join(
            f"count(DISTINCT ({', '.join(_quoted(c.source) for c in group)}))" for group in sets
        ) + " FROM sample_text").fetchone()
        found = [tuple(sorted(group, key=columns.index)) for group, count in zip(sets, counts) if count == rows]
        if found:
            return found
    return []


def fallback_key(conn, columns: list[Column], rows: int) -> tuple[Column, ...]:
    """No natural key: every column without NULLs together (the platform needs a key to deduplicate)."""
    filled = [c for c in columns if not c.nulls]
    if not filled:
        raise ScaffoldError("no column is filled in every row, so no key can be drafted; the platform needs a key "
                            "(primaryKey) to deduplicate: add an identifying column to the file")
    distinct = conn.execute(
        f"SELECT count(*) FROM (SELECT DISTINCT {', '.join(_quoted(c.source) for c in filled)} FROM sample_text)"
    ).fetchone()[0]
    copies = f"; {rows - distinct} row(s) are copies of another and cleaning keeps one of each" if distinct < rows else ""
    filled[0].notes.append(f"no column or set of up to {MAX_KEY_COLUMNS} columns is unique over the sample, so the "
                           f"key is every column filled in every row ({', '.join(c.name for c in filled)}){copies}: "
                           "declare the real key if the data has one")
    return tuple(filled)


# --- writing the draft ----------------------------------------------------------------------------

def _yaml(value) -> str:
    """A value as YAML flow text (JSON is YAML: strings are quoted, so dates stay text)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_yaml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    if isinstance(value, str) and re.match(r"^[A-Za-z_][A-Za-z0-9_./\-]*$", value) and value.lower() not in (
            "true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"):
        return value
    return json.dumps(value, ensure_ascii=False)


def render(name: str, path: Path, source: dict, columns: list[Column], rows: int,
           time_column: Optional[Column], keys: list[tuple[Column, ...]]) -> str:
    today = dt.date.today().isoformat()
    key = keys[0] if keys else ()
    out = [
        f"# Draft contract for the dataset {name}, written by `python -m data_platform dataset new` on {today}",
        f"# from {path} ({rows} rows).",
        "# Everything below is what the file shows, not what the data means: read every `# REVIEW` line,",
        "# write the descriptions, then validate with `python -m data_platform dataset check` and reload",
        "# the code location in the UI. The platform profile (customProperties) is documented in the README,",
        "# section \"Add a dataset\".",
        "apiVersion: v3.1.0",
        "kind: DataContract",
        f"id: urn:data-platform:dataset:{name}",
        f"name: {name}",
        "version: 0.1.0",
        "status: draft",
        "description:",
        f"  # REVIEW: what the data is for, and what it cannot be used for (usage, limitations).",
        f"  purpose: {_yaml(f'{name}, onboarded from {path.name}.')}",
        "team:",
        "  # REVIEW: the team that owns the data (the assets' owner in the catalog).",
        "  name: data-platform",
        "schema:",
        f"  - name: {name}",
        f"    physicalName: {name}",
        "    physicalType: table",
        f"    description: {_yaml(f'Rows of {path.name}.')}  # REVIEW: one sentence on what a row is",
        "    customProperties:",
        "      # Where the rows come from: read by DuckDB on every materialization.",
        "      - property: source",
        f"        value: {_yaml(source)}",
    ]
    if time_column is not None:
        out += [
            f"      # Daily partitions by the date of {time_column.name}, over the dates the file has.",
            "      # REVIEW: drop `end` if the file keeps growing (a live feed: partitions up to today), and set",
            "      # `timezone` to the zone whose calendar days the partitions are.",
            "      - property: partitioning",
            "        value: " + _yaml({"cadence": "daily", "start": time_column.low.isoformat(),
                                      "end": time_column.high.isoformat(), "timezone": "UTC",
                                      "column": time_column.name}),
            "      # Optional, see the README: volume (rows per day against a day-of-week baseline), drift",
            "      # (monitored columns against a reference window), freshnessLagHours, plausibilitySeries, sampleBy.",
        ]
    else:
        out += ["      # No date column was given or found: a reference table, replaced whole on each run.",
                "      # REVIEW: name a date column with --time-column if the rows belong to days."]
    out.append("    properties:")
    if time_column is not None:
        out += [
            "      # The partition column the platform stores (the last part of the key: the key holds per day).",
            f"      - name: {PARTITION_COLUMN}",
            "        logicalType: date",
            "        physicalType: DATE",
            "        required: true",
            "        primaryKey: true",
            f"        primaryKeyPosition: {len(key) + 1}",
            "        partitioned: true",
            "        partitionKeyPosition: 1",
            f"        description: {_yaml(f'The date of {time_column.name}.')}",
            f"        transformSourceObjects: [{time_column.name}]",
        ]
    for column in columns:
        out += _render_column(column, column in key, key.index(column) + 1 if column in key else None,
                              keys, rows, column is time_column)
    return "\n".join(out) + "\n"


def _render_column(column: Column, is_key: bool, position: Optional[int], keys, rows: int, is_time: bool) -> list[str]:
    out = []
    for note in column.notes:
        out.append(f"      # REVIEW {column.name}: {note}.")
    out += [f"      - name: {column.name}"]
    out.append(f"        logicalType: {column.logical}")
    if column.logical == "number":
        out.append("        physicalType: DOUBLE")
    if column.nulls:
        out.append(f"        # {column.nulls} of {rows} rows have no value: optional.")
    else:
        out.append(f"        required: true  # REVIEW: no row of the sample lacks it; drop if it may be missing")
    if is_key:
        others = [", ".join(c.name for c in group) for group in keys[1:6]]
        also = f" (other candidates: {'; '.join(others)})" if others else ""
        if any("the key is every column" in note for note in keys[0][0].notes):  # the fallback key
            out.append(f"        # REVIEW: part of the drafted key (see the note on {keys[0][0].name}).")
        else:
            what = "key candidate" if len(keys[0]) == 1 else f"part of the key candidate ({', '.join(c.name for c in keys[0])})"
            out += [f"        # REVIEW: {what}, unique over the {rows} rows of the sample{also};",
                    "        # confirm it identifies a row (per partition for a partitioned dataset)."]
        out += ["        primaryKey: true", f"        primaryKeyPosition: {position}"]
    out.append(f"        description: {_yaml(f'{column.source} as in the file.')}  # REVIEW: meaning, unit")
    options = dict(column.options)
    if column.logical in ("integer", "number") and column.low is not None:
        low, high = _margin(float(column.low), float(column.high), column.logical == "integer")
        options["minimum"], options["maximum"] = low, high
        shown = f"{column.low:g}..{column.high:g}" if column.logical == "number" else f"{column.low}..{column.high}"
        out.append(f"        # REVIEW: the sample has {shown}; the range allows a margin. Write the valid range.")
    if options:
        out.append(f"        logicalTypeOptions: {_yaml(options)}")
    if column.values:
        out += [f"        # REVIEW: the {len(column.values)} values the sample has; rows with another value are quarantined.",
                "        quality:",
                f"          - {_yaml({'metric': 'invalidValues', 'arguments': {'validValues': column.values}, 'mustBe': 0})}"]
    if column.custom:
        out.append("        customProperties:")
        out += [f"          - {_yaml({'property': name, 'value': value})}" for name, value in column.custom]
    return out


def new_contract(name: str, source_path: str | Path, time_column: Optional[str] = None,
                 time_format: Optional[str] = None, folder: Optional[Path] = None) -> Path:
    """Write the draft `<name>.odcs.yaml`; returns its path. ScaffoldError says why it cannot."""
    import duckdb

    from data_platform.datasets import contract_files
    from data_platform.datasets.load import read_document

    if not IDENTIFIER.match(name):
        raise ScaffoldError(f"dataset name {name!r} must match {IDENTIFIER.pattern} (it names tables and assets)")
    folder = (folder or settings.user_datasets_dir()).resolve()
    target = folder / f"{name}{SUFFIX}"
    if target.exists():
        raise ScaffoldError(f"{target} already exists; refusing to overwrite it (edit it, or delete it first)")
    for existing in contract_files():
        try:
            declared = (read_document(existing)[0] or {}).get("name")
        except ContractError:
            declared = None
        if declared == name or existing.name == target.name:
            raise ScaffoldError(f"a dataset named {name!r} is already declared in {existing}; choose another name")
    path = Path(source_path).expanduser().resolve()
    if not path.is_file():
        raise ScaffoldError(f"{path}: no such file")
    if path.suffix not in FORMATS:
        raise ScaffoldError(f"{path}: the platform reads .csv, .parquet and a .zip holding one CSV; got {path.suffix!r}")
    if time_format is not None and time_column is None:
        raise ScaffoldError("--time-format needs --time-column (the column it describes)")
    source = source_value(path, folder)
    with duckdb.connect() as conn:
        readable = path
        if path.suffix == ".zip":
            from data_platform.ingest import readable_file

            readable = readable_file(path)
        columns, rows = measure(conn, readable, source["format"], time_column, time_format)
        timed = next((c for c in columns if c.source == time_column), None)
        if timed is None and time_column is None:
            timed = next((c for c in columns if c.logical in ("date", "timestamp") and not c.nulls), None)
            if timed is not None:
                _time_column(conn, timed, None, path)
                timed.notes.append("chosen as the partition column: the first date column without empty values")
        keys = key_candidates(conn, columns) or [fallback_key(conn, columns, rows)]
    text = render(name, path, source, columns, rows, timed, keys)
    folder.mkdir(parents=True, exist_ok=True)
    with target.open("x", encoding="utf-8") as handle:  # "x": never overwrite, even in a race
        handle.write(text)
    return target


# --- dataset check --------------------------------------------------------------------------------

def check_contracts(files: Optional[list[Path]] = None, out: TextIO = sys.stdout) -> int:
    """Validate the given contracts (every contract when none) with the set they belong to; 0 when valid."""
    from data_platform.datasets import contract_files, dataset_name, validate_set
    from data_platform.datasets.load import read_contract

    discovered = [path.resolve() for path in contract_files()]
    given = [Path(f).expanduser().resolve() for f in files] if files else discovered
    problems: list[Problem] = []
    for path in given:
        if not path.is_file():
            problems.append(Problem(path, 1, "", "no such file"))
        elif not path.name.endswith(SUFFIX):
            problems.append(Problem(path, 1, "", f"a contract file is named <dataset>{SUFFIX}"))
    datasets, broken = [], set()
    for path in dict.fromkeys([*discovered, *(p for p in given if p.is_file())]):
        try:
            datasets.append(read_contract(path))
        except ContractError as error:
            problems.extend(error.problems)
            broken.add(dataset_name(path))
    problems.extend(validate_set(datasets, broken))
    problems.extend(_source_problems([d for d in datasets if d.path.resolve() in given]))
    wanted = set(given)
    shown = [p for p in problems if Path(p.file).resolve() in wanted]
    bad = {Path(p.file).resolve() for p in shown}
    for dataset in datasets:
        path = dataset.path.resolve()
        if path in wanted and path not in bad:
            print(f"OK {dataset.name} ({path})", file=out)
            if path not in discovered:
                print(f"   note: {path.parent} is not a datasets folder, so the platform does not load it: "
                      f"move it to {settings.user_datasets_dir()} or set {settings.DATASETS_ENV}", file=out)
    for problem in shown:
        print(problem, file=out)
    if shown:
        print(f"{len(shown)} problem(s) in {len(bad)} contract(s)", file=out)
    return 1 if shown else 0


def _source_problems(datasets) -> list[Problem]:
    """A file or package source must exist and have the contract's columns."""
    from data_platform.datasets.load import line_of, read_document
    import csv
    import io
    import zipfile

    from data_platform.ingest import SourceError, SourceResource, _check_header, check_parquet

    source = SourceResource(landing_dir=settings.landing_dir())
    problems = []
    for dataset in datasets:
        if source.effective(dataset).type == "landing":
            continue
        data, lines = read_document(dataset.path)
        entries = [e.get("property") for e in data["schema"][0].get("customProperties") or []]
        at = ("schema", 0, "customProperties", entries.index("source") if "source" in entries else 0, "value")
        required = [p.source_name for p in dataset.source_properties]
        try:
            path = source.source_file(dataset)
            if not path.is_file():
                raise SourceError(f"source file {path} does not exist")
            if path.suffix == ".parquet":
                check_parquet(path, required)
            else:
                if path.suffix == ".zip":  # the header of the one CSV inside, without extracting it
                    with zipfile.ZipFile(path) as archive:
                        members = [m for m in archive.namelist() if not m.endswith("/")]
                        if len(members) != 1:
                            raise SourceError(f"{path}: a zipped source holds exactly one file; found {members}")
                        with archive.open(members[0]) as raw:
                            header = next(csv.reader(io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")), None)
                else:
                    with path.open(encoding="utf-8-sig", newline="") as handle:
                        header = next(csv.reader(handle), None)
                if header is None:
                    raise SourceError(f"{path}: file has no header line")
                _check_header(path, header, required)
        except (SourceError, OSError, UnicodeDecodeError, zipfile.BadZipFile, csv.Error) as error:
            problems.append(Problem(dataset.path, line_of(lines, at), "schema[0].customProperties.source", str(error)))
    return problems

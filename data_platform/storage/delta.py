"""Delta Lake tables written by delta-rs: where a table lives, its commits, versions and history.

Table `layer.name` is the directory `$DATA_PLATFORM_HOME/tables/<layer>/<name>`. Every field carries
the DuckDB type it was written from (`data_platform.sql_type` in its metadata), so a reader gets the
contract's types back: a TIMESTAMP without zone is stored as a UTC timestamp (Delta's
`timestamp_ntz` needs reader protocol 3; the file-list read path skips reader features, so tables
stay at reader protocol 1) and read back as the same wall-clock value.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from data_platform.settings import home_path

TABLES_DIR = "tables"
SQL_TYPE = "data_platform.sql_type"   # field metadata: the DuckDB type the column was written from
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


class StorageError(Exception):
    """A table that cannot be read or written as asked, with what to do about it."""


class ConcurrentWrite(StorageError):
    """Another run committed the same days of a table first; a retry reads its result and writes again."""


def split_name(name: str) -> tuple[str, str]:
    parts = name.split(".")
    if len(parts) != 2 or not all(IDENTIFIER.match(part) for part in parts):
        raise StorageError(f"table name {name!r} is not layer.name (lower case letters, digits, _)")
    return parts[0], parts[1]


def root() -> Path:
    return home_path(TABLES_DIR)


def table_path(name: str) -> Path:
    return home_path(TABLES_DIR, *split_name(name))


def exists(name: str) -> bool:
    return (table_path(name) / "_delta_log").is_dir()


def table_names() -> list[str]:
    """Every stored table, as layer.name."""
    base = root()
    if not base.is_dir():
        return []
    return sorted(f"{log.parent.parent.name}.{log.parent.name}" for log in base.glob("*/*/_delta_log")
                  if IDENTIFIER.match(log.parent.parent.name) and IDENTIFIER.match(log.parent.name))


def open_table(name: str, version: Optional[int] = None, as_of: Optional[dt.datetime] = None):
    from deltalake import DeltaTable

    if not exists(name):
        raise StorageError(f"table {name} does not exist (no Delta table at {table_path(name)})")
    table = DeltaTable(str(table_path(name)))
    try:
        if version is not None:
            table.load_as_version(version)
        elif as_of is not None:
            first = table.history()[-1]
            if as_of.timestamp() * 1000 < first["timestamp"]:
                raise StorageError(f"table {name} did not exist yet at {as_of.isoformat()} (its first version is "
                                   f"of {dt.datetime.fromtimestamp(first['timestamp'] / 1000, dt.timezone.utc):%Y-%m-%d %H:%M:%S} UTC)")
            table.load_as_version(as_of)
    except StorageError:
        raise
    except Exception as error:  # delta-rs raises its own error types for unknown versions and times
        wanted = f"version {version}" if version is not None else f"the version as of {as_of.isoformat()}"
        raise StorageError(f"table {name} has no {wanted}: {error}") from error
    return table


@dataclass(frozen=True)
class Snapshot:
    """One version of a table: what a reader needs to query it."""

    name: str
    version: int
    files: list[str]
    columns: list[tuple[str, str]]   # (name, DuckDB type) in stored order
    partitioned: bool


def snapshot(name: str, version: Optional[int] = None, as_of: Optional[dt.datetime] = None) -> Snapshot:
    table = open_table(name, version, as_of)
    files = table.file_uris()
    if version is not None or as_of is not None:
        gone = [path for path in files if not os.path.exists(path)]
        if gone:
            raise StorageError(
                f"version {table.version()} of {name} can no longer be read: {len(gone)} of its {len(files)} "
                f"file(s) were removed by a vacuum (first: {gone[0]}); versions older than the retention "
                "(DATA_PLATFORM_RETENTION_DAYS) are kept only when a registered model was trained on them"
            )
    columns = [(field.name, (field.metadata or {}).get(SQL_TYPE) or _delta_sql_type(field.type))
               for field in table.schema().fields]
    return Snapshot(name, table.version(), files, columns, "day" in table.metadata().partition_columns)


def _delta_sql_type(delta_type) -> str:
    """DuckDB type of a Delta primitive (for tables written by other tools, without our field metadata)."""
    text = str(getattr(delta_type, "type", delta_type))
    known = {"string": "VARCHAR", "long": "BIGINT", "integer": "INTEGER", "short": "SMALLINT", "byte": "TINYINT",
             "double": "DOUBLE", "float": "FLOAT", "boolean": "BOOLEAN", "date": "DATE", "timestamp": "TIMESTAMPTZ",
             "timestamp_ntz": "TIMESTAMP", "binary": "BLOB"}
    return known.get(text) or text.upper()


def write(name: str, batches, *, partitioned: bool, days: Optional[tuple[dt.date, dt.date]],
          metadata: dict[str, str], read_version: Optional[int]) -> int:
    """Commit `batches` (an Arrow stream) as one new version of the table; returns the version.

    With `days`, the commit replaces exactly that range of a day-partitioned table (rows outside it
    are refused); without, it replaces the whole table. A column the table lacks is added. The
    commit is checked against `read_version`, the version the writer read: if another commit
    replaced any of the same days since, it is refused (`ConcurrentWrite`); other days pass.
    """
    from deltalake import CommitProperties, DeltaTable, WriterProperties, write_deltalake
    from deltalake.exceptions import CommitFailedError

    path = table_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    predicate = f"day >= '{days[0].isoformat()}' AND day <= '{days[1].isoformat()}'" if days else None
    target = DeltaTable(str(path), version=read_version) if read_version is not None else str(path)
    try:
        write_deltalake(target, batches, mode="overwrite", predicate=predicate,
                        partition_by=["day"] if partitioned else None, schema_mode="merge",
                        writer_properties=WriterProperties(compression="ZSTD"),  # a quarter smaller than snappy
                        commit_properties=CommitProperties(custom_metadata=metadata))
    except CommitFailedError as error:
        span = f"days {days[0]}..{days[1]}" if days else "the whole table"
        raise ConcurrentWrite(
            f"{name}: {span} were replaced at the same time by {_writers_since(name, read_version, days)}; this "
            f"commit was refused so that no day holds a mix of both (run it again: it reads their result)"
        ) from error
    except Exception as error:
        if "failed validation check" in str(error):
            raise StorageError(f"{name}: rows outside days {days[0]}..{days[1]} were refused: {error}") from error
        raise
    return open_table(name).version()


def _writers_since(name: str, read_version: Optional[int], days: Optional[tuple[dt.date, dt.date]]) -> str:
    """The commits since `read_version` that replaced any of `days` (all of them for a whole table)."""
    newer = [commit for commit in history(name) if read_version is None or commit["version"] > read_version]
    named = [f"run {c['run_id']} ({c['days'] or 'whole table'}, version {c['version']})" if c["run_id"]
             else f"version {c['version']} ({c['operation'].lower()})" for c in newer if _overlaps(c["days"], days)]
    return ", ".join(named) or "another writer"


def _overlaps(committed: str, days: Optional[tuple[dt.date, dt.date]]) -> bool:
    if not committed or days is None:  # a whole-table commit (or a restore) overlaps every range
        return True
    first, _, last = committed.partition("..")
    return first <= days[1].isoformat() and last >= days[0].isoformat()


def history(name: str, limit: Optional[int] = None) -> list[dict]:
    """Commits newest first: version, time, operation, run id, asset, days, rows, and restore details."""
    commits = []
    for entry in open_table(name).history(limit):
        metrics = entry.get("operationMetrics") or {}
        commits.append({
            "version": entry["version"],
            "time": dt.datetime.fromtimestamp(entry["timestamp"] / 1000, dt.timezone.utc),
            "operation": entry.get("operation", ""),
            "run_id": entry.get("dagster_run_id", ""),
            "asset_key": entry.get("dagster_asset_key", ""),
            "days": entry.get("days", ""),
            "rows": metrics.get("num_added_rows", metrics.get("numRestoredFiles")),
            "code_version": entry.get("code_version", ""),
            "reason": entry.get("reason", ""),
            "restored_version": entry.get("restored_version", ""),
        })
    return commits


def restore(name: str, target: int, metadata: dict[str, str]) -> int:
    """Make version `target` the table's content again, as a new version; returns it."""
    from deltalake import CommitProperties

    table = open_table(name)
    try:
        table.restore(target, commit_properties=CommitProperties(custom_metadata=metadata))
    except Exception as error:
        raise StorageError(f"{name} cannot be restored to {target}: {error}") from error
    return open_table(name).version()


def vacuum(name: str, retention: dt.timedelta, keep_versions: list[int]) -> list[str]:
    """Delete files that no version younger than `retention`, nor any of `keep_versions`, reads."""
    table = open_table(name)
    keep = sorted(v for v in set(keep_versions) if v <= table.version())
    return table.vacuum(retention_hours=int(retention.total_seconds() // 3600), dry_run=False,
                        enforce_retention_duration=False, keep_versions=keep or None)


def disk_bytes(name: Optional[str] = None) -> int:
    base = table_path(name) if name else root()
    return sum(path.stat().st_size for path in base.rglob("*") if path.is_file())

"""The storage boundary: the only code that knows where and how the platform's tables are stored.

Every table (raw, cleaned, quarantine, features, predictions, performance) is a Delta Lake table
under `$DATA_PLATFORM_HOME/tables/<layer>/<name>` (`delta.py`), partitioned by `day` where daily.
Asset and check code works in DuckDB, in process: `connection()` (and the `warehouse` resource)
gives an in-memory DuckDB connection in which every stored table is a view `layer.name` over the
files of its newest version, so SQL reads tables by name. Writes hand a query's result over:

* `replace_days(conn, contract, query, params, first, last)` replaces exactly days first..last of a
  daily table in one commit (a re-run is idempotent; a crash leaves the old rows or the new ones);
* `replace_table(conn, contract, query, params)` replaces an unpartitioned table whole.

Each commit records the Dagster run, asset and code version that wrote it (`writing_as`). Older
versions are read with `attach(conn, name, version=N | as_of=T)`; `history`, `restore` and `vacuum`
are in `tables.py` (the `table` command). A second implementation (object storage, or a warehouse
such as PostgreSQL) provides the same functions: a read-only relation per table and version, an
atomic replace of a day range or a whole table that refuses rows outside it and detects a
concurrent replace of the same days, per-commit metadata, and history with restore.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from dataclasses import dataclass
from typing import Iterator, Optional

from dagster_duckdb import DuckDBResource

from data_platform.contracts import TableContract
from data_platform.partitions import day_chunks
from data_platform.settings import duckdb_memory_limit, home_path
from data_platform.storage import delta
from data_platform.storage.delta import ConcurrentWrite, StorageError, split_name

__all__ = [
    "ConcurrentWrite", "EMPTY_VERSION", "PartitionStats", "StorageError", "WarehouseResource", "attach",
    "attached_version", "stored_tables",
    "connection", "data_columns", "partition_stats", "read_days", "replace_days", "replace_table",
    "table_exists", "table_stats", "table_uri", "writing_as",
]

EMPTY_VERSION = "empty"
WRITER = "data_platform_writer"   # DuckDB variable: who commits through this connection (JSON)
ATTACHED = "storage_versions"     # temp table: which version each view reads
STATS_DAYS = 31                   # days hashed per query by partition_stats
CONFLICT_RETRIES = 3              # step retries after a concurrent replace of the same days


@contextlib.contextmanager
def connection(conn=None, *, migrating: bool = False) -> Iterator:
    """An in-memory DuckDB connection with every stored table as a view of its newest version.

    `migrating`: for `table migrate` only, which fills the tables of a home written before them.
    """
    import duckdb

    from data_platform.storage.migrate import refuse_unmigrated_home

    if not migrating:
        refuse_unmigrated_home()
    conn = conn or duckdb.connect()
    try:
        # Timestamps written without an offset are typed in a zone the contract names, never in the
        # machine's local zone; and a TIMESTAMP column is stored as the UTC instant of its value.
        conn.execute("SET TimeZone = 'UTC'")
        # DuckDB's default limit is 80 % of RAM, so a large pass never spills and a step's memory grows
        # with its range (cleaning a year at 10x the bundled data: 5.0 GiB; with 2GB, 3.2 GiB).
        conn.execute(f"SET memory_limit = '{duckdb_memory_limit()}'")
        conn.execute(f"SET temp_directory = '{_sql_text(home_path('tmp'))}'")
        conn.execute(f"CREATE TEMP TABLE {ATTACHED} (name VARCHAR PRIMARY KEY, version BIGINT)")
        for name in [] if migrating else delta.table_names():
            attach(conn, name)
        yield conn
    finally:
        conn.close()


class WarehouseResource(DuckDBResource):
    """dagster-duckdb's resource on the platform's tables: `get_connection(context)` is `connection()`
    with the run, asset and code version of `context` recorded in every commit it makes."""

    database: str = ":memory:"

    @contextlib.contextmanager
    def get_connection(self, context=None):
        from dagster import RetryRequested

        refuse_unmigrated_home_in_runs()
        with super().get_connection() as conn, connection(conn) as conn:
            if context is not None:
                writing_as(conn, context)
            try:
                yield conn
            except ConcurrentWrite as error:  # the other run's commit is in: run the step again on top of it
                if context is not None:
                    context.log.warning(str(error))
                raise RetryRequested(max_retries=CONFLICT_RETRIES, seconds_to_wait=1) from error


def refuse_unmigrated_home_in_runs() -> None:
    """A home written before the Delta tables fails a step at once, with what to run as its error."""
    from dagster import Failure

    from data_platform.storage.migrate import UnmigratedHome, refuse_unmigrated_home

    try:
        refuse_unmigrated_home()
    except UnmigratedHome as error:
        raise Failure(description=str(error), allow_retries=False) from error


def writing_as(conn, context) -> None:
    """Record the Dagster run, asset key and code version of `context` in the commits `conn` makes."""
    record_writer(conn, writer_of(context))


def writer_of(context) -> dict:
    """Who writes, as recorded in each commit: the Dagster run, asset key and code version."""
    key = None
    with contextlib.suppress(Exception):  # a multi-asset or a check context has no single asset key
        key = context.asset_key
    code_version = ""
    with contextlib.suppress(Exception):
        code_version = context.assets_def.code_versions_by_key.get(key) or ""
    return {"dagster_run_id": context.run.run_id, "dagster_asset_key": key.to_user_string() if key else "",
            "code_version": code_version}


def record_writer(conn, writer: dict) -> None:
    conn.execute(f"SET VARIABLE {WRITER} = ?", [json.dumps(writer)])


def attach(conn, name: str, version: Optional[int] = None, as_of: Optional[dt.datetime] = None) -> int:
    """Make view `name` in `conn` read the table's newest version, or the one given; returns it."""
    found = delta.snapshot(name, version, as_of)
    layer, table = split_name(name)
    columns = ", ".join(_read_column(column, sql_type) for column, sql_type in found.columns)
    if found.files:
        files = ", ".join(f"'{_sql_text(path)}'" for path in found.files)
        hive = ", hive_partitioning = true, hive_types = {'day': DATE}" if found.partitioned else ""
        source = f"read_parquet([{files}], union_by_name = true{hive})"
    else:
        columns = ", ".join(f'CAST(NULL AS {sql_type}) AS "{column}"' for column, sql_type in found.columns)
        source = "(SELECT 1) WHERE false"
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {layer}")
    conn.execute(f"CREATE OR REPLACE VIEW {layer}.{table} AS SELECT {columns} FROM {source}")
    conn.execute(f"INSERT OR REPLACE INTO {ATTACHED} VALUES (?, ?)", [name, found.version])
    return found.version


def _sql_text(text) -> str:
    return str(text).replace("'", "''")


def _read_column(column: str, sql_type: str) -> str:
    return f'CAST("{column}" AS TIMESTAMP) AS "{column}"' if sql_type == "TIMESTAMP" else f'"{column}"'


def attached_version(conn, name: str) -> Optional[int]:
    rows = conn.execute(f"SELECT version FROM {ATTACHED} WHERE name = ?", [name]).fetchall()
    return rows[0][0] if rows else None


def stored_tables(conn) -> dict[str, int]:
    """Every table attached to `conn`, with the version it reads."""
    return dict(conn.execute(f"SELECT name, version FROM {ATTACHED} ORDER BY name").fetchall())


def table_uri(name: str) -> str:
    return delta.table_path(name).as_uri()


def table_exists(conn, table: str) -> bool:
    return attached_version(conn, table) is not None


# --- writing --------------------------------------------------------------------------------

def replace_days(conn, contract: TableContract, query: str, params, first: dt.date, last: dt.date) -> int:
    """Replace days first..last of a daily table with the rows of `query`, in one commit; returns the
    new table version."""
    return _commit(conn, contract.name, _typed(contract), query, params, (first, last))


def replace_table(conn, contract: TableContract, query: str, params=None) -> int:
    """Replace all rows of an unpartitioned table with the rows of `query`, in one commit."""
    return _commit(conn, contract.name, _typed(contract), query, params, None)


def _typed(contract: TableContract) -> list[tuple[str, str]]:
    return [(name, column.sql_type) for name, column in contract.columns.items()]


def _commit(conn, name: str, columns: list[tuple[str, str]], query: str, params, days) -> int:
    """Write the rows of `query` cast to `columns` (the casts an INSERT into the typed table made)."""
    import pyarrow as pa

    select = ", ".join(f'CAST("{column}" AS {_stored_type(sql_type)}) AS "{column}"' for column, sql_type in columns)
    writer = json.loads(conn.execute(f"SELECT getvariable('{WRITER}')").fetchall()[0][0] or "{}")
    read_version = attached_version(conn, name)
    conn.complete()  # a relation's stream needs the connection free of an earlier, unfinished result
    reader = conn.sql(f"SELECT {select} FROM ({query})", params=params or None).to_arrow_reader()
    schema = pa.schema([field.with_metadata({delta.SQL_TYPE: sql_type})
                        for field, (_, sql_type) in zip(reader.schema, columns)])
    metadata = {**writer, "days": f"{days[0]}..{days[1]}" if days else ""}
    version = delta.write(name, reader.cast(schema), partitioned=days is not None, days=days,
                          metadata={key: str(value) for key, value in metadata.items()},
                          read_version=read_version)
    attach(conn, name)
    return version


def _stored_type(sql_type: str) -> str:
    return "TIMESTAMPTZ" if sql_type == "TIMESTAMP" else sql_type


# --- reading figures --------------------------------------------------------------------------

def data_columns(contract: TableContract) -> list[str]:
    """Columns that carry data: bookkeeping (ingestion, run ids) is excluded from versions."""
    return [name for name in contract.columns if not name.startswith("_") and not name.endswith("run_id")]


def _row_hash(contract: TableContract) -> str:
    fields = ", ".join(f'"{name}" := "{name}"' for name in data_columns(contract))
    return f"md5(CAST(struct_pack({fields}) AS VARCHAR))"


@dataclass(frozen=True)
class PartitionStats:
    rows: int
    data_version: str
    table_version: Optional[int] = None   # the table version these figures were read from
    uri: Optional[str] = None             # where the table lives


def partition_stats(conn, contract: TableContract, first: dt.date, last: dt.date) -> dict[dt.date, PartitionStats]:
    """Row count and content hash of each day in first..last (days without rows included). A month is
    hashed at a time: the hash sorts each day's row hashes, and a year of 100x the bundled flights at
    once did not fit in a connection's memory."""
    found = []
    for start, end in day_chunks(first, last, STATS_DAYS):
        found += conn.execute(
            f"""
            SELECT day, count(*), md5(string_agg(row_hash, '' ORDER BY row_hash))
            FROM (SELECT day, {_row_hash(contract)} AS row_hash FROM {contract.name}
                  WHERE day BETWEEN ? AND ?)
            GROUP BY day
            """,
            [start, end],
        ).fetchall()
    version, uri = attached_version(conn, contract.name), table_uri(contract.name)
    stats = {day: PartitionStats(int(rows), data_version, version, uri) for day, rows, data_version in found}
    day = first
    while day <= last:
        stats.setdefault(day, PartitionStats(0, EMPTY_VERSION, version, uri))
        day += dt.timedelta(days=1)
    return dict(sorted(stats.items()))


def table_stats(conn, contract: TableContract) -> PartitionStats:
    rows, data_version = conn.execute(
        f"SELECT count(*), md5(coalesce(string_agg(row_hash, '' ORDER BY row_hash), '')) "
        f"FROM (SELECT {_row_hash(contract)} AS row_hash FROM {contract.name})"
    ).fetchone()
    return PartitionStats(int(rows), data_version if rows else EMPTY_VERSION,
                          attached_version(conn, contract.name), table_uri(contract.name))


def read_days(conn, table: str, first: dt.date, last: dt.date, columns: str = "*"):
    return conn.execute(
        f"SELECT {columns} FROM {table} WHERE day BETWEEN ? AND ? ORDER BY day", [first, last]
    ).df()

"""Writing to and reading from the DuckDB warehouse.

Asset key `[layer, name]` is table `layer.name`; its DDL comes from the table's contract. Every
partition write deletes the range's rows and inserts the new ones in one transaction: a re-run is
idempotent and a crash leaves the old rows or the new ones, never a mix.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass
from typing import Iterator

from dagster_duckdb import DuckDBResource

from data_platform.contracts import TableContract, ddl

EMPTY_VERSION = "empty"


class WarehouseResource(DuckDBResource):
    """dagster-duckdb's resource, closing its connection also when the asset code raises.

    The stock context manager closes only on success; a failed step would keep the file open
    (and locked) in a long-lived process until garbage collection.
    """

    @contextlib.contextmanager
    def get_connection(self):
        conn = super().get_connection().__enter__()
        try:
            # Timestamps written without an offset are typed in a zone the contract names, never
            # in the machine's local zone.
            conn.execute("SET TimeZone = 'UTC'")
            yield conn
        finally:
            conn.close()


@contextlib.contextmanager
def transaction(conn) -> Iterator:
    conn.execute("BEGIN TRANSACTION")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def ensure_table(conn, contract: TableContract) -> None:
    layer = contract.name.split(".")[0]
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {layer}")
    conn.execute(f"CREATE TABLE IF NOT EXISTS {contract.name} ({ddl(contract)})")
    # A contract that gained a column (e.g. cleaned.weather's nulled_values) migrates older tables.
    existing = {
        row[0]
        for row in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
            contract.name.split("."),
        ).fetchall()
    }
    for name, col in contract.columns.items():
        if name not in existing:
            conn.execute(f'ALTER TABLE {contract.name} ADD COLUMN "{name}" {col.sql_type}')


def replace_days(conn, contract: TableContract, query: str, params: list, first: dt.date, last: dt.date) -> None:
    """Replace rows of days first..last with the result of `query` (call inside `transaction`)."""
    ensure_table(conn, contract)
    conn.execute(f"DELETE FROM {contract.name} WHERE day BETWEEN ? AND ?", [first, last])
    conn.execute(f"INSERT INTO {contract.name} BY NAME {query}", params)


def replace_table(conn, contract: TableContract, query: str, params: list | None = None) -> None:
    """Replace all rows of an unpartitioned table (call inside `transaction`)."""
    ensure_table(conn, contract)
    conn.execute(f"DELETE FROM {contract.name}")
    conn.execute(f"INSERT INTO {contract.name} BY NAME {query}", params or [])


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


def partition_stats(conn, contract: TableContract, first: dt.date, last: dt.date) -> dict[dt.date, PartitionStats]:
    """Row count and content hash of each day in first..last (days without rows included)."""
    found = conn.execute(
        f"""
        SELECT day, count(*), md5(string_agg(row_hash, '' ORDER BY row_hash))
        FROM (SELECT day, {_row_hash(contract)} AS row_hash FROM {contract.name}
              WHERE day BETWEEN ? AND ?)
        GROUP BY day
        """,
        [first, last],
    ).fetchall()
    stats = {day: PartitionStats(int(rows), version) for day, rows, version in found}
    day = first
    while day <= last:
        stats.setdefault(day, PartitionStats(0, EMPTY_VERSION))
        day += dt.timedelta(days=1)
    return dict(sorted(stats.items()))


def table_stats(conn, contract: TableContract) -> PartitionStats:
    rows, version = conn.execute(
        f"SELECT count(*), md5(coalesce(string_agg(row_hash, '' ORDER BY row_hash), '')) "
        f"FROM (SELECT {_row_hash(contract)} AS row_hash FROM {contract.name})"
    ).fetchone()
    return PartitionStats(int(rows), version if rows else EMPTY_VERSION)


def read_days(conn, table: str, first: dt.date, last: dt.date, columns: str = "*"):
    return conn.execute(
        f"SELECT {columns} FROM {table} WHERE day BETWEEN ? AND ? ORDER BY day", [first, last]
    ).df()


def table_exists(conn, table: str) -> bool:
    layer, name = table.split(".")
    return bool(
        conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [layer, name],
        ).fetchone()[0]
    )

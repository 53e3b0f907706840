"""Change stored rows the way a bad upstream re-run would, through the storage boundary.

Tables are read-only views, so a test edits a copy: the table's rows go into the DuckDB table
`edited`, the test's UPDATE/DELETE statements run on it, and the result replaces the table (every
day it held, or the whole unpartitioned table) in one commit, a new version like any run's.
"""

from __future__ import annotations

from data_platform import storage
from data_platform.contracts import TableContract


def edit(contract: TableContract, *statements) -> int:
    """Run `statements` (SQL, or (SQL, params)) on `edited`, a copy of the table; store the result and
    return the new table version."""
    with storage.connection() as conn:
        conn.execute(f"CREATE TEMP TABLE edited AS SELECT * FROM {contract.name}")
        for statement in statements:
            sql, params = (statement, []) if isinstance(statement, str) else statement
            conn.execute(sql, params)
        if not contract.partitioned:
            return storage.replace_table(conn, contract, "SELECT * FROM edited")
        first, last = conn.execute(f"SELECT min(day), max(day) FROM {contract.name}").fetchone()
        return storage.replace_days(conn, contract, "SELECT * FROM edited", [], first, last)

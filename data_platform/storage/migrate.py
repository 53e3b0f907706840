"""Homes written before the Delta tables: their one DuckDB file is migrated by one command, or refused.

`python -m data_platform table migrate` copies every table of `$DATA_PLATFORM_HOME/warehouse.duckdb`
into a Delta table (one commit each, with the same types), checks that every day's row count and
content hash are equal before and after, and then renames the file to `warehouse.duckdb.migrated`
(kept: nothing is deleted). Until then every connection refuses to start, so an unmigrated home never
looks like an empty platform.
"""

from __future__ import annotations

import sys

from data_platform.settings import home_path
from data_platform.storage import delta

OLD_WAREHOUSE = "warehouse.duckdb"
MIGRATED_SUFFIX = ".migrated"
LAYERS = ("raw", "cleaned", "quarantine", "features", "ml")


class UnmigratedHome(delta.StorageError):
    """The home holds a warehouse file written before the Delta tables."""


def refuse_unmigrated_home() -> None:
    old = home_path(OLD_WAREHOUSE)
    if old.exists():
        raise UnmigratedHome(
            f"{old} holds tables written before this platform stored them as Delta tables; they are not read "
            "any more. Run `python -m data_platform table migrate` once (row counts and content hashes are "
            f"checked, the file is kept as {old.name}{MIGRATED_SUFFIX}), or move the file away to start empty."
        )


def migrate() -> list[tuple[str, int, int]]:
    """Copy every table of the old file into Delta tables; returns (table, rows, version) per table."""
    import duckdb

    from data_platform import storage

    old = home_path(OLD_WAREHOUSE)
    if not old.exists():
        raise delta.StorageError(f"nothing to migrate: {old} does not exist")
    migrated = []
    with duckdb.connect(str(old), read_only=True) as source, storage.connection(migrating=True) as target:
        source.execute("SET TimeZone = 'UTC'")
        tables = source.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' AND table_schema IN (SELECT unnest(?)) ORDER BY ALL", [list(LAYERS)]
        ).fetchall()
        for layer, table in tables:
            name = f"{layer}.{table}"
            delta.split_name(name)
            columns = source.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position", [layer, table]
            ).fetchall()
            frame = source.sql(f"SELECT * FROM {name}").to_arrow_table()
            target.register("migrating", frame)
            days = None
            if "day" in {column for column, _ in columns}:
                bounds = source.execute(f"SELECT min(day), max(day) FROM {name}").fetchone()
                days = bounds if bounds[0] is not None else None
            version = storage._commit(target, name, columns, "SELECT * FROM migrating", None, days)
            target.unregister("migrating")
            before, after = _fingerprint(source, name, columns), _fingerprint(target, name, columns)
            if before != after:
                raise delta.StorageError(f"{name}: the migrated table differs from {old} "
                                         f"(per-day rows and hashes); {old} is left as it was")
            migrated.append((name, sum(rows for _, rows, _ in before), version))
    old.rename(old.with_name(old.name + MIGRATED_SUFFIX))
    return migrated


def _fingerprint(conn, name: str, columns) -> list[tuple]:
    fields = ", ".join(f'"{column}" := "{column}"' for column, _ in columns)
    day = "day" if "day" in {column for column, _ in columns} else "NULL"
    return conn.execute(
        f"SELECT d, count(*), md5(string_agg(h, '' ORDER BY h)) FROM "
        f"(SELECT {day} AS d, md5(CAST(struct_pack({fields}) AS VARCHAR)) AS h FROM {name}) GROUP BY d ORDER BY d"
    ).fetchall()


def migrate_command() -> int:
    try:
        migrated = migrate()
    except delta.StorageError as error:
        print(f"table migrate: {error}", file=sys.stderr)
        return 1
    for name, rows, version in migrated:
        print(f"{name}: {rows:,} rows -> {delta.table_path(name)} (version {version})")
    print(f"migrated {len(migrated)} table(s); per-day row counts and content hashes equal")
    return 0

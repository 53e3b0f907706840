"""`python -m data_platform table list|history|show|restore|vacuum|migrate`: the tables' versions by hand.

A restore is a new version of the table (so it can itself be undone) and is recorded in Dagster as a
materialization of the asset that writes the table, one per day whose content it changed, with the
reason and the restored version: the catalog, lineage and automation see it like any new data.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from typing import Optional

from data_platform import storage
from data_platform.settings import home_path, retention
from data_platform.storage import delta
from data_platform.storage.delta import StorageError

SHOWN_ROWS = 5


def add_table_commands(commands) -> None:
    table = commands.add_parser("table", help="list stored tables, their history, a version's rows; restore or "
                                              "vacuum versions; migrate a home written before the Delta tables")
    actions = table.add_subparsers(dest="table_command", required=True)
    actions.add_parser("list", help="every stored table with its newest version, rows and location")
    history = actions.add_parser("history", help="a table's versions: time, operation, run, days, rows")
    history.add_argument("name", help="layer.table, e.g. cleaned.flights")
    history.add_argument("--limit", type=int, default=20)
    show = actions.add_parser("show", help="row counts (per day) and a few rows of a table's version")
    show.add_argument("name")
    _add_target(show, required=False)
    show.add_argument("--day", type=dt.date.fromisoformat, help="only this day (YYYY-MM-DD)")
    restore = actions.add_parser("restore", help="make an older version the table's content again (a new version)")
    restore.add_argument("name")
    _add_target(restore, required=True)
    restore.add_argument("--reason", required=True, help="why (recorded in the table's history and in Dagster)")
    vacuum = actions.add_parser("vacuum", help="delete files of versions older than DATA_PLATFORM_RETENTION_DAYS "
                                               "(default 30) that no registered model was trained on")
    vacuum.add_argument("names", nargs="*", metavar="NAME", help="tables (default: every table)")
    actions.add_parser("migrate", help="copy the tables of a home's warehouse.duckdb (written before the Delta "
                                       "tables) into Delta tables, checking row counts and content hashes")


def _add_target(parser, required: bool) -> None:
    target = parser.add_mutually_exclusive_group(required=required)
    target.add_argument("--version", type=int, help="table version (see `table history`)")
    target.add_argument("--as-of", type=_timestamp, help="the version current at this time (ISO 8601; UTC if no offset)")


def _timestamp(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def run_table_command(args) -> int:
    from data_platform.storage.migrate import migrate_command

    if args.table_command == "migrate":
        return migrate_command()
    try:
        if args.table_command == "list":
            return _list()
        if args.table_command == "history":
            return _history(args.name, args.limit)
        if args.table_command == "show":
            return _show(args.name, args.version, args.as_of, args.day)
        if args.table_command == "restore":
            return _restore(args.name, args.version if args.version is not None else args.as_of, args.reason)
        return _vacuum(args.names)
    except StorageError as error:
        print(f"table {args.table_command}: {error}", file=sys.stderr)
        return 1


def _list() -> int:
    print(f"{'table':<30}{'version':>8}{'rows':>12}  location")
    with storage.connection() as conn:
        for name, version in storage.stored_tables(conn).items():
            rows = conn.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0]
            print(f"{name:<30}{version:>8}{rows:>12,}  {delta.table_path(name)}")
    return 0


def _history(name: str, limit: int) -> int:
    print(f"{'version':>7}  {'time (UTC)':<19}  {'operation':<9}  {'rows':>9}  {'days':<22}  run / reason")
    for commit in delta.history(name, limit):
        rows = "" if commit["rows"] is None else f"{commit['rows']:,}"
        who = commit["run_id"] or ""
        if commit["operation"] == "RESTORE":
            who = f"restored version {commit['restored_version']}: {commit['reason']}"
        print(f"{commit['version']:>7}  {commit['time']:%Y-%m-%d %H:%M:%S}  {commit['operation']:<9}  {rows:>9}  "
              f"{commit['days'] or '(whole table)':<22}  {who}")
    return 0


def _show(name: str, version: Optional[int], as_of: Optional[dt.datetime], day: Optional[dt.date]) -> int:
    with storage.connection() as conn:
        if not storage.table_exists(conn, name):
            raise StorageError(f"table {name} does not exist; `table list` shows the stored tables")
        shown = storage.attach(conn, name, version, as_of)
        columns = {row[0] for row in conn.execute(f"DESCRIBE {name}").fetchall()}
        where, params = ("WHERE day = ?", [day]) if day else ("", [])
        if day and "day" not in columns:
            raise StorageError(f"{name} is not partitioned by day")
        rows = conn.execute(f"SELECT count(*) FROM {name} {where}", params).fetchall()[0][0]
        print(f"{name} version {shown}: {rows:,} rows{f' on {day}' if day else ''}")
        if "day" in columns and not day:
            per_day = conn.execute(f"SELECT day, count(*) FROM {name} GROUP BY day ORDER BY day").fetchall()
            if per_day:
                print(f"{len(per_day)} day(s), {per_day[0][0]}..{per_day[-1][0]}; rows per day: "
                      + ", ".join(f"{d}: {n:,}" for d, n in per_day[:7]) + (" ..." if len(per_day) > 7 else ""))
        sample = conn.execute(f"SELECT * FROM {name} {where} LIMIT {SHOWN_ROWS}", params).df()
    if len(sample):
        print(sample.to_string(index=False, max_colwidth=28))
    return 0


def _restore(name: str, target, reason: str) -> int:
    from dagster import AssetKey, AssetMaterialization, MetadataValue

    asset_key = _writing_asset(name)
    with _instance() as instance:  # before the restore: never a restore that Dagster does not hear of
        current = delta.open_table(name)
        wanted = delta.open_table(name, *((target, None) if isinstance(target, int) else (None, target)))
        before_files, after_files, before_version = _files_by_day(current), _files_by_day(wanted), current.version()
        restored = wanted.version()
        changed = sorted(day for day in set(before_files) | set(after_files)
                         if before_files.get(day) != after_files.get(day))
        if not changed:
            raise StorageError(f"{name} version {before_version} already holds the content of version {restored}: "
                               "nothing to restore")
        version = delta.restore(name, restored, {"reason": reason, "restored_version": str(restored)})
        metadata = {"restored_version": restored, "table_version": version, "replaced_version": before_version,
                    "reason": reason, "dagster/uri": MetadataValue.path(storage.table_uri(name)),
                    "operation": "table restore"}
        rows = _rows_by_day(wanted)
        partitions = changed
        for day in partitions:
            held = f"restored to version {restored}" if day in after_files else \
                f"restored to version {restored}, which has no rows for this day"
            instance.report_runless_asset_event(AssetMaterialization(
                asset_key=AssetKey.from_user_string(asset_key), partition=day,
                description=f"{name} {held}: {reason}",
                metadata={**metadata, "dagster/row_count": rows.get(day, 0)}))
    print(f"{name}: version {version} restores version {restored} ({len(changed)} day(s) changed); "
          f"recorded in Dagster as {len(partitions)} materialization(s) of {asset_key}")
    return 0


def _writing_asset(name: str) -> str:
    """The asset whose runs write the table (the newest commit that names one)."""
    for commit in delta.history(name):
        if commit["asset_key"]:
            return commit["asset_key"]
    raise StorageError(f"no commit of {name} names the asset that writes it, so a restore could not be "
                       "recorded in Dagster; materialize the asset once first")


def _rows_by_day(table) -> dict[Optional[str], int]:
    """Rows of each day of a table version, from its log (no data file is read)."""
    import pyarrow as pa

    actions = pa.table(table.get_add_actions(flatten=True))
    days = (actions.column("partition.day").to_pylist() if "partition.day" in actions.column_names
            else [None] * actions.num_rows)
    rows: dict[Optional[str], int] = {}
    for day, count in zip(days, actions.column("num_records").to_pylist()):
        key = None if day is None else str(day)
        rows[key] = rows.get(key, 0) + (count or 0)
    return rows


def _files_by_day(table) -> dict[Optional[str], frozenset]:
    files: dict[Optional[str], set] = {}
    for path in table.file_uris():
        day = next((part.split("=", 1)[1] for part in path.split("/") if part.startswith("day=")), None)
        files.setdefault(day, set()).add(path)
    return {day: frozenset(paths) for day, paths in files.items()}


def _instance():
    from dagster import DagsterInstance

    if not os.environ.get("DAGSTER_HOME"):
        default = home_path("dagster")
        if not (default / "dagster.yaml").exists():
            raise StorageError("DAGSTER_HOME is not set (and $DATA_PLATFORM_HOME/dagster has no dagster.yaml): "
                               "the restore must be recorded in the Dagster instance the UI shows; set it")
        os.environ["DAGSTER_HOME"] = str(default)
    return DagsterInstance.get()


def _vacuum(names: list[str]) -> int:
    from data_platform.mlflow_store import MlflowStore
    from data_platform.training_set import pinned_table_versions

    keep = pinned_table_versions(MlflowStore.from_env())
    for name in names or delta.table_names():
        deleted = delta.vacuum(name, retention(), keep.get(name, []))
        pinned = sorted(keep.get(name, []))
        print(f"{name}: {len(deleted)} file(s) deleted" + (f"; kept versions {pinned} (registered models)" if pinned else ""))
    return 0

"""Catalog export: every asset of the Definitions, with what the Dagster instance knows of it.

`python -m data_platform catalog [--output PATH]` writes JSON Lines, one record per asset, for
loading into another catalog tool. Everything comes from the code location's Definitions (key,
description, owners, kinds, group, code version, column schema and lineage, upstream assets,
checks, the published ODCS contract of the table, see `publish.py`) and from the instance's event log (per partition: latest row count, data version, run id,
timestamp; latest check results). Nothing is kept by hand.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import IO, Iterator, Optional

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    Definitions,
    TableColumnLineage,
    TableSchema,
    TimeWindowPartitionsDefinition,
)

ROW_COUNT = "dagster/row_count"
DATA_VERSION_TAG = "dagster/data_version"
CODE_VERSION_TAG = "dagster/code_version"
PARTITION_VERSION = "partition_data_version"  # per-partition content hash (see metadata.record_partitions)
SCHEMA_KEY, LINEAGE_KEY = "dagster/column_schema", "dagster/column_lineage"


def _key(key: AssetKey) -> str:
    return key.to_user_string()


def _timestamp(seconds: Optional[float]) -> Optional[str]:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).isoformat() if seconds is not None else None


def _schema(schema: TableSchema) -> list[dict]:
    return [
        {
            "name": col.name,
            "type": col.type,
            "description": col.description,
            "nullable": col.constraints.nullable,
            "unique": col.constraints.unique,
            "constraints": list(col.constraints.other),
        }
        for col in schema.columns
    ]


def _lineage(lineage: TableColumnLineage) -> dict:
    return {
        column: [{"asset": _key(dep.asset_key), "column": dep.column_name} for dep in deps]
        for column, deps in lineage.deps_by_column.items()
    }


def _plain(value):
    """A metadata value as JSON: schemas and lineage in full, anything else by its value."""
    raw = getattr(value, "value", value)
    if isinstance(raw, TableSchema):
        return _schema(raw)
    if isinstance(raw, TableColumnLineage):
        return _lineage(raw)
    if isinstance(raw, (str, int, float, bool)) or raw is None:
        return raw
    return str(raw)


def _partitioning(partitions_def) -> Optional[dict]:
    if partitions_def is None:
        return None
    if isinstance(partitions_def, TimeWindowPartitionsDefinition):
        return {
            "type": "time_window",
            "cron_schedule": partitions_def.cron_schedule,
            "start": partitions_def.start.isoformat(),
            "end": partitions_def.end.isoformat() if partitions_def.end else None,
            "timezone": partitions_def.timezone,
        }
    return {"type": type(partitions_def).__name__}


def _materialization(record) -> dict:
    """Latest row count, data version, run id and time of one materialization event record."""
    event = record.event_log_entry
    materialization = event.asset_materialization
    metadata = materialization.metadata
    tags = materialization.tags or {}
    version = metadata.get(PARTITION_VERSION)
    return {
        "partition": materialization.partition,
        "row_count": getattr(metadata.get(ROW_COUNT), "value", None),
        "data_version": getattr(version, "value", None) or tags.get(DATA_VERSION_TAG),
        "code_version": tags.get(CODE_VERSION_TAG),
        "run_id": event.run_id,
        "timestamp": _timestamp(event.timestamp),
    }


def materialized_partitions(instance: DagsterInstance, key: AssetKey) -> list[dict]:
    """The latest materialization of every materialized partition, in partition order."""
    storage_ids = instance.get_latest_storage_id_by_partition(key, DagsterEventType.ASSET_MATERIALIZATION)
    if not storage_ids:
        return []
    ids = sorted(storage_ids.values())
    found = []
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        records = instance.fetch_materializations(AssetRecordsFilter(asset_key=key, storage_ids=chunk), limit=len(chunk))
        found += [_materialization(record) for record in records.records]
    return sorted(found, key=lambda entry: entry["partition"])


def latest_materialization(instance: DagsterInstance, key: AssetKey) -> Optional[dict]:
    records = instance.fetch_materializations(key, limit=1).records
    return _materialization(records[0]) if records else None


def _checks(graph, instance: DagsterInstance, check_keys) -> list[dict]:
    checks = []
    for check_key in sorted(check_keys, key=lambda k: k.name):
        spec = graph.get_check_spec(check_key)
        latest = instance.get_latest_asset_check_evaluation_record(check_key)
        evaluation = None
        if latest is not None and latest.event is not None:
            data = latest.event.dagster_event.event_specific_data if latest.event.dagster_event else None
            if data is not None and hasattr(data, "passed"):
                evaluation = {
                    "passed": data.passed,
                    "severity": data.severity.value,
                    "description": data.description,
                    "partition": data.partition,
                    "run_id": latest.run_id,
                    "timestamp": _timestamp(latest.event.timestamp),
                }
        checks.append({
            "name": check_key.name,
            "description": spec.description,
            "blocking": spec.blocking,
            "latest": evaluation,
        })
    return checks


def catalog_records(defs: Definitions, instance: DagsterInstance) -> Iterator[dict]:
    """One record per asset of `defs`, in key order."""
    from data_platform.publish import stored_tables

    graph = defs.resolve_asset_graph()
    published = stored_tables()
    for key in sorted(graph.get_all_asset_keys(), key=_key):
        node = graph.get(key)
        metadata = dict(node.metadata or {})
        schema = metadata.pop(SCHEMA_KEY, None)
        lineage = metadata.pop(LINEAGE_KEY, None)
        table = _plain(metadata.pop("dagster/table_name", None))
        partitions = materialized_partitions(instance, key) if node.is_partitioned else []
        latest = latest_materialization(instance, key)
        yield {
            "key": _key(key),
            "asset_key": list(key.path),
            "description": node.description,
            "owners": list(node.owners),
            "kinds": sorted(node.kinds),
            "group": node.group_name,
            "code_version": node.code_version,
            "table": table,
            "uri": _plain(metadata.pop("dagster/uri", None)),
            "column_schema": _plain(schema),
            "odcs_contract": published.get(table),
            "quarantine_odcs_contract": published.get(_plain(metadata.get("quarantine_table"))),
            "column_lineage": _plain(lineage),
            "upstream": sorted(_key(parent) for parent in node.parent_keys),
            "downstream": sorted(_key(child) for child in node.child_keys),
            "partitioning": _partitioning(node.partitions_def),
            "metadata": {name: _plain(value) for name, value in sorted(metadata.items())},
            "checks": _checks(graph, instance, node.check_keys),
            "materialized_partitions": len(partitions),
            "partitions": partitions,
            "latest_materialization": latest,
        }


def write_catalog(output: IO[str], defs: Definitions, instance: DagsterInstance) -> int:
    count = 0
    for record in catalog_records(defs, instance):
        output.write(json.dumps(record, sort_keys=False) + "\n")
        count += 1
    return count


def export_catalog(output: Optional[str]) -> int:
    """The `catalog` command: write the catalog to `output` ("-" for stdout); returns an exit code."""
    from data_platform.definitions import defs
    from data_platform.demo import ensure_dagster_home
    from data_platform.settings import home_path

    ensure_dagster_home()
    with DagsterInstance.get() as instance:
        if output == "-":
            count = write_catalog(sys.stdout, defs, instance)
            target = "stdout"
        else:
            path = Path(output) if output else home_path("catalog.jsonl")
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("w", encoding="utf-8") as handle:
                count = write_catalog(handle, defs, instance)
            target = str(path)
        print(f"wrote {count} asset record(s) to {target} (Dagster home {instance.root_directory})", file=sys.stderr)
    return 0

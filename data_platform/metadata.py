"""Catalog metadata: what every table asset declares and what every materialization records."""

from __future__ import annotations

import datetime as dt
import hashlib

from dagster import AssetExecutionContext, DataVersion, MetadataValue

from data_platform.contracts import TableContract, column_schema
from data_platform.storage import PartitionStats, table_uri

OWNER = "team:data-platform"


def table_definition_metadata(contract: TableContract) -> dict:
    """Static metadata for an asset backed by a warehouse table."""
    return {
        "dagster/column_schema": column_schema(contract),
        "dagster/table_name": contract.name,
        "dagster/uri": MetadataValue.path(table_uri(contract.name)),
    }


def dataset_metadata(dataset, contract: TableContract) -> dict:
    """Static metadata of a dataset's table: the table's, plus where its contract lives."""
    return {
        **table_definition_metadata(contract),
        "contract": MetadataValue.path(str(dataset.path)),
        "contract_version": dataset.version,
        "dataset": dataset.name,
    }


def combined_version(stats: dict[dt.date, PartitionStats]) -> DataVersion:
    """One partition: its content hash. A range: a hash of the per-partition hashes, in order."""
    if len(stats) == 1:
        return DataVersion(next(iter(stats.values())).data_version)
    digest = hashlib.sha256("".join(f"{d}:{s.data_version};" for d, s in stats.items()).encode())
    return DataVersion(digest.hexdigest()[:32])


def record_partitions(context: AssetExecutionContext, stats: dict[dt.date, PartitionStats], **per_day: dict) -> None:
    """Attach row count and data version to each partition's materialization event.

    `per_day` maps extra metadata names to {day: value}. Dagster records one materialization per
    partition of a range run; this makes each carry its own figures.
    """
    for day, figures in stats.items():
        context.add_asset_metadata(
            {
                "dagster/row_count": figures.rows,
                "partition_data_version": figures.data_version,
                **stored_in(figures),
                **{name: values.get(day, 0) for name, values in per_day.items()},
            },
            partition_key=day.isoformat(),
        )


def stored_in(figures: PartitionStats) -> dict:
    """Which table version the figures were read from, and where the table lives."""
    if figures.table_version is None:
        return {}
    return {"table_version": figures.table_version, "dagster/uri": MetadataValue.path(figures.uri)}

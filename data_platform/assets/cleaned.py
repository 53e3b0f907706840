"""Cleaned layer of any dataset: typed exactly, deduplicated; what cannot be cleaned is quarantined
(the SQL is in data_platform/cleaning.py, every rule comes from the dataset's contract)."""


from dagster import AssetExecutionContext, AssetKey, AssetsDefinition, MaterializeResult, asset

from data_platform.cleaning import clean, column_lineage
from data_platform.contracts import column_schema
from data_platform.datasets.model import Dataset
from data_platform.compute import ComputeResource, merged
from data_platform.metadata import combined_version, dataset_metadata, record_partitions, stored_in
from data_platform.partitions import dataset_partitions, run_days, single_run
from data_platform.storage import WarehouseResource, partition_stats, table_stats

CODE_VERSION = "3"


def cleaned_asset(dataset: Dataset) -> AssetsDefinition:
    lineage = column_lineage(dataset)
    partitions = dataset_partitions(dataset)
    # Referenced datasets come first: a backfill then orders their runs before this one, so the
    # reference checks judge against a table that exists.
    references = sorted({AssetKey(["cleaned", r.dataset]) for r in dataset.references})

    @asset(
        key=["cleaned", dataset.name],
        group_name="cleaned",
        description=dataset.cleaned.description + f" Declared in {dataset.path.name}.",
        owners=[dataset.owner],
        kinds={"duckdb", "sql"},
        code_version=f"{CODE_VERSION}-{dataset.fingerprint}",  # engine and contract
        partitions_def=partitions,
        backfill_policy=single_run if partitions else None,
        
        deps=[AssetKey(["raw", dataset.name]), *references],
        metadata={
            **dataset_metadata(dataset, dataset.cleaned),
            "dagster/column_lineage": lineage,
            "quarantine_table": dataset.quarantine.name,
            "quarantine_column_schema": column_schema(dataset.quarantine),
        },
    )
    def cleaned(context: AssetExecutionContext, warehouse: WarehouseResource,
                compute: ComputeResource) -> MaterializeResult:
        first, last = run_days(context) if partitions else (None, None)
        spread = {}
        if partitions:
            done, spread = compute.run(context, "clean", dataset.name, first, last)
            outcome = merged(done)
        with warehouse.get_connection(context) as conn:
            if not partitions:
                outcome = clean(conn, dataset, first, last, context.run.run_id)
            stats = (partition_stats(conn, dataset.cleaned, first, last) if partitions
                     else {None: table_stats(conn, dataset.cleaned)})
        totals = {name: sum(per_day.values()) for name, per_day in outcome.items()}
        cleaned_rows = sum(s.rows for s in stats.values())
        conserved = totals["raw_rows"] == cleaned_rows + totals["quarantined_rows"] + totals["duplicates_removed"]
        context.log.info(
            f"{dataset.cleaned.name} {first or ''}..{last or ''}: {totals['raw_rows']:,} raw = {cleaned_rows:,} cleaned "
            f"+ {totals['quarantined_rows']:,} quarantined + {totals['duplicates_removed']:,} duplicates"
        )
        if partitions:
            record_partitions(context, stats, **outcome)
            metadata = {f"{name}_in_run": total for name, total in totals.items()}
        else:
            metadata = {"dagster/row_count": cleaned_rows, **stored_in(stats[None]), **totals}
        return MaterializeResult(
            metadata={**metadata, **spread, "cleaned_rows_in_run": cleaned_rows, "rows_conserved": conserved,
                      "dagster/column_lineage": lineage},
            data_version=combined_version(stats),
        )

    return cleaned

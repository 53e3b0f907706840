"""Raw layer of any dataset: what the source sent, as text, plus ingestion bookkeeping."""


from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    Backoff,
    Failure,
    Jitter,
    MaterializeResult,
    RetryPolicy,
    asset,
)

from data_platform.compute import ComputeResource, merged
from data_platform.datasets.model import Dataset
from data_platform.ingest import SourceError, SourceResource
from data_platform.metadata import combined_version, dataset_metadata, record_partitions, stored_in
from data_platform.partitions import dataset_partitions, run_days, single_run
from data_platform.storage import WarehouseResource, partition_stats, replace_days, replace_table, table_stats

# Source reads can meet a drop still being written or a flaky mount: retry with backoff and jitter.
SOURCE_RETRY = RetryPolicy(max_retries=3, delay=2, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)
CODE_VERSION = "2"


def ingest(conn, source: SourceResource, dataset: Dataset, first=None, last=None, run_id: str = "") -> int:
    """Replace raw.<name> (days first..last when partitioned) with what the source has; returns its rows."""
    query, params = source.received(conn, dataset, first, last, run_id)
    if dataset.partitioned:
        replace_days(conn, dataset.raw, query, params, first, last)
        return conn.execute(f"SELECT count(*) FROM {dataset.raw.name} WHERE day BETWEEN ? AND ?",
                            [first, last]).fetchall()[0][0]
    replace_table(conn, dataset.raw, query, params)
    return conn.execute(f"SELECT count(*) FROM {dataset.raw.name}").fetchall()[0][0]


def _failing_without_retry(error: SourceError) -> Failure:
    # Retrying cannot fix a bad file; the message names it and what is wrong.
    return Failure(description=str(error), allow_retries=False)


def raw_asset(dataset: Dataset) -> AssetsDefinition:
    contract = dataset.raw
    partitions = dataset_partitions(dataset)

    @asset(
        key=["raw", dataset.name],
        group_name="raw",
        description=f"{dataset.description} As the source sent it: every column as text"
                    + (", one partition per date." if partitions else ".")
                    + f" Declared in {dataset.path.name}.",
        owners=[dataset.owner],
        kinds={"duckdb", dataset.source.format},
        code_version=f"{CODE_VERSION}-{dataset.fingerprint}",  # engine and contract
        retry_policy=SOURCE_RETRY,
        
        metadata=dataset_metadata(dataset, contract),
        partitions_def=partitions,
        backfill_policy=single_run if partitions else None,
    )
    def raw(context: AssetExecutionContext, warehouse: WarehouseResource, source: SourceResource,
            compute: ComputeResource) -> MaterializeResult:
        if partitions is None:
            with warehouse.get_connection(context) as conn:
                try:
                    rows = ingest(conn, source, dataset, run_id=context.run.run_id)
                except SourceError as error:
                    raise _failing_without_retry(error) from error
                stats = table_stats(conn, contract)
            return MaterializeResult(
                metadata={"dagster/row_count": stats.rows, **stored_in(stats), "source": source.describe(dataset)},
                data_version=combined_version({None: stats}),
            )
        first, last = run_days(context)
        context.log.info(f"reading {dataset.name} {first}..{last} from {source.describe(dataset)}")
        try:
            done, spread = compute.run(context, "ingest", dataset.name, first, last, source)
        except SourceError as error:
            raise _failing_without_retry(error) from error
        rows = merged(done)
        with warehouse.get_connection(context) as conn:
            stats = partition_stats(conn, contract, first, last)
        record_partitions(context, stats)
        context.log.info(f"wrote {rows:,} rows of {contract.name} for {len(stats)} day(s)")
        return MaterializeResult(
            metadata={"rows_in_run": rows, "source": source.describe(dataset), **spread},
            data_version=combined_version(stats),
        )

    return raw

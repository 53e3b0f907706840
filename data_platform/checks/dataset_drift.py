"""Drift of a dataset's monitored columns, when its contract declares `drift` (columns and a reference window).

The same engine as `feature_drift` (`data_platform.drift`: Evidently, effect sizes, thresholds
calibrated on the reference, stored JSON snapshots and HTML reports): each partition of
`cleaned/NAME` against the contract's reference window of the same table. The check is
`monitored_columns_drift` on `cleaned/NAME`; per partition it records the drift share on
`monitoring/NAME_drift`, so the UI plots it across partitions.
"""


from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetChecksDefinition,
    AssetKey,
    AssetSpec,
    asset_check,
)
from dagster_duckdb import DuckDBResource

from data_platform.datasets.model import Dataset
from data_platform.partitions import dataset_partitions

CHECK_NAME = "monitored_columns_drift"
NUMERIC_TYPES = ("INTEGER", "BIGINT", "SMALLINT", "DOUBLE")


def record_key(dataset: Dataset) -> AssetKey:
    return AssetKey(["monitoring", f"{dataset.name}_drift"])


def policy(dataset: Dataset):
    from data_platform import drift

    columns = []
    for name in dataset.drift.columns:
        if dataset.prop(name).sql_type in NUMERIC_TYPES:
            columns.append(drift.ColumnPolicy(name, drift.NUMERICAL, "wasserstein"))
        else:
            columns.append(drift.ColumnPolicy(name, drift.CATEGORICAL, "jensenshannon"))
    return drift.DriftPolicy(f"{dataset.name}_drift", tuple(columns), key=dataset.key, error_share=0.5)


def dataset_drift(dataset: Dataset) -> tuple[list[AssetSpec], list[AssetChecksDefinition]]:
    """The record asset and the check for a dataset with `drift` in its contract (else nothing)."""
    if dataset.drift is None:
        return [], []
    cleaned = AssetKey(["cleaned", dataset.name])
    first, last = dataset.drift.reference
    columns = ", ".join(dataset.drift.columns)
    record = AssetSpec(
        key=record_key(dataset),
        deps=[cleaned],
        partitions_def=dataset_partitions(dataset),
        group_name="monitoring",
        owners=[dataset.owner],
        kinds={"evidently"},
        description=(
            f"Drift of {dataset.name}'s monitored columns ({columns}) per partition, recorded by the "
            f"`{CHECK_NAME}` check on cleaned/{dataset.name} (not materialized on its own): drift_share (plotted "
            "across partitions), drifted_columns, severity and the Evidently report."
        ),
    )

    @asset_check(
        asset=cleaned,
        name=CHECK_NAME,
        
        blocking=False,
        description=(
            f"Columns {columns} of each partition against the contract's reference window {first}..{last} of "
            f"cleaned.{dataset.name} (Evidently; Wasserstein for numbers, Jensen-Shannon for categories, thresholds "
            "calibrated on the reference). WARN when a column drifts, ERROR when half of them do. Reports under "
            f"$DATA_PLATFORM_HOME/reports/drift/{dataset.name}_drift."
        ),
    )
    def monitored_columns_drift(context: AssetCheckExecutionContext, warehouse: DuckDBResource) -> AssetCheckResult:
        from data_platform import drift
        from data_platform.checks import drift as drift_checks

        checked = drift.configured(policy(dataset))
        table = dataset.cleaned.name
        with warehouse.get_connection() as conn:
            rows = conn.execute(f"SELECT count(*) FROM {table} WHERE day BETWEEN ? AND ?", [first, last]).fetchone()[0]
            if not rows:
                return AssetCheckResult(
                    passed=True, severity=AssetCheckSeverity.WARN, metadata={"reference": "none"},
                    description=f"not checked: the reference window {first}..{last} of {table} has no rows yet")
            digest = drift_checks.window_digest(conn, table, (first, last))
            reference = drift.prepare_reference(
                checked, digest, f"reference window {first}..{last} of {table}",
                lambda: conn.execute(f"SELECT * FROM {table} WHERE day BETWEEN ? AND ?", [first, last]).df(),
            )
            days = drift_checks.checked_days(context, conn, table)
            frame = drift_checks.read_rows(conn, table, list(dataset.drift.columns), days)
        outcomes = drift.measure_days(drift.DriftMeter(checked, reference, drift.ReportStore()), frame, days) if days else []
        drift_checks.record_partitions(context, record_key(dataset), outcomes, reference)
        for outcome in outcomes:
            context.log.info(outcome.summary())
        return drift_checks.check_result(checked, reference, outcomes, f"cleaned.{dataset.name}")

    return [record], [monitored_columns_drift]

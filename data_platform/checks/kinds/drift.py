"""Drift of a dataset's monitored columns (the contract's `drift` custom property: columns and a reference window).

The same library as `feature_drift` (`data_platform.drift`: Evidently, effect sizes, thresholds
calibrated on the reference, stored JSON snapshots and HTML reports; `data_platform.drift_results`):
each partition of `cleaned/NAME` against the contract's reference window of the same table. The
check is `monitored_columns_drift` on `cleaned/NAME`; per partition it records the drift share on
`monitoring/NAME_drift`, so the UI plots it across partitions.
"""

import datetime as dt
from dataclasses import dataclass

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

from data_platform.checks.kinds import CheckKind, register
from data_platform.datasets.profile import DATE_TEXT, NAME, object_schema
from data_platform.drift_results import check_result, days_of_run, read_rows, record_partitions, window_digest
from data_platform.partitions import dataset_partitions

SCHEMA = object_schema(
    {
        "columns": {"type": "array", "items": NAME, "minItems": 1},
        "reference": object_schema({"start": DATE_TEXT, "end": DATE_TEXT}, required=("start", "end")),
    },
    required=("columns", "reference"),
)


@dataclass(frozen=True)
class Drift:
    columns: tuple[str, ...]
    reference: tuple[dt.date, dt.date]


def read(value: dict, dataset, problem) -> Drift:
    names = {p.name for p in dataset.properties}
    for index, column in enumerate(value["columns"]):
        if column not in names:
            problem(("columns", index), f"drift column {column!r} is not a property of {dataset.name}")
    window = []
    for end in ("start", "end"):
        try:
            window.append(dt.date.fromisoformat(value["reference"][end]))
        except ValueError:
            problem(("reference", end), f"{value['reference'][end]!r} is not a date (YYYY-MM-DD)")
            window.append(dt.date.min)
    if not dataset.partitioned:
        problem((), "drift monitoring compares partitions: it needs a partitioned dataset")
    return Drift(tuple(value["columns"]), tuple(window))


CHECK_NAME = "monitored_columns_drift"
NUMERIC_TYPES = ("INTEGER", "BIGINT", "SMALLINT", "DOUBLE")


def record_key(dataset) -> AssetKey:
    return AssetKey(["monitoring", f"{dataset.name}_drift"])


def policy(dataset, monitored: Drift):
    from data_platform import drift

    columns = []
    for name in monitored.columns:
        if dataset.prop(name).sql_type in NUMERIC_TYPES:
            columns.append(drift.ColumnPolicy(name, drift.NUMERICAL, "wasserstein"))
        else:
            columns.append(drift.ColumnPolicy(name, drift.CATEGORICAL, "jensenshannon"))
    return drift.DriftPolicy(f"{dataset.name}_drift", tuple(columns), key=dataset.key, error_share=0.5)


def definitions(dataset, monitored: Drift) -> tuple[list[AssetSpec], list[AssetChecksDefinition]]:
    """The record asset and the check of a dataset with `drift` in its contract."""
    cleaned = AssetKey(["cleaned", dataset.name])
    first, last = monitored.reference
    columns = ", ".join(monitored.columns)
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

        checked = drift.configured(policy(dataset, monitored))
        table = dataset.cleaned.name
        with warehouse.get_connection() as conn:
            rows = conn.execute(f"SELECT count(*) FROM {table} WHERE day BETWEEN ? AND ?", [first, last]).fetchone()[0]
            if not rows:
                return AssetCheckResult(
                    passed=True, severity=AssetCheckSeverity.WARN, metadata={"reference": "none"},
                    description=f"not checked: the reference window {first}..{last} of {table} has no rows yet")
            digest = window_digest(conn, table, (first, last))
            reference = drift.prepare_reference(
                checked, digest, f"reference window {first}..{last} of {table}",
                lambda: conn.execute(f"SELECT * FROM {table} WHERE day BETWEEN ? AND ?", [first, last]).df(),
            )
            days = days_of_run(context, conn, table)
            frame = read_rows(conn, table, list(monitored.columns), days)
        outcomes = drift.measure_days(drift.DriftMeter(checked, reference, drift.ReportStore()), frame, days) if days else []
        record_partitions(context, record_key(dataset), outcomes, reference)
        for outcome in outcomes:
            context.log.info(outcome.summary())
        return check_result(checked, reference, outcomes, f"cleaned.{dataset.name}")

    return [record], [monitored_columns_drift]


register(CheckKind("drift", property="drift", schema=SCHEMA, read=read, definitions=definitions))

"""Drift outcomes in Dagster: the run's days and rows, one check result, per-partition record figures.

The drift library (with the engine `data_platform.drift` and its Evidently parts in
`data_platform.drift_evidently`) shared by the ML's drift checks (`checks/drift.py`) and a dataset's
`drift` check kind (`checks/kinds/drift.py`). It knows tables and record asset keys as arguments,
never an asset module.
"""


import datetime as dt
import hashlib
from typing import Optional

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    AssetMaterialization,
    MetadataValue,
    TableColumn,
    TableRecord,
    TableSchema,
)

from data_platform import drift
from data_platform.checks.framework import checked_days
from data_platform.partitions import days_between
from data_platform.storage import table_exists

SHOWN_IN_DESCRIPTION = 6


def window_digest(conn, table: str, window: tuple[dt.date, dt.date]) -> str:
    """Identity of a window of stored partitions: a hash of its rows computed in DuckDB, so a cached
    reference is reused until the window's content changes, without reading it."""
    rows, content = conn.execute(
        f"SELECT count(*), coalesce(sum(hash(t) % 1000000007), 0) FROM {table} t WHERE day BETWEEN ? AND ?", list(window)
    ).fetchone()
    if not rows:
        raise ValueError(f"the drift reference window {window[0]}..{window[1]} of {table} has no rows: materialize it first")
    return hashlib.sha256(f"{table}:{window[0]}:{window[1]}:{rows}:{content}".encode()).hexdigest()


# --- days and rows --------------------------------------------------------------------------------


def days_of_run(context: AssetCheckExecutionContext, conn, table: str) -> list[dt.date]:
    """The partitions of the run; launched alone, every stored partition of the table."""
    days = checked_days(context, conn, table)
    return days_between(*days) if days else []


def read_rows(conn, table: str, columns: list[str], days: list[dt.date]) -> "pd.DataFrame":
    import pandas as pd

    if not days or not table_exists(conn, table):
        return pd.DataFrame(columns=["day", *columns])
    names = ", ".join(f'"{name}"' for name in ["day", *columns])
    return conn.execute(f"SELECT {names} FROM {table} WHERE day BETWEEN ? AND ?", [days[0], days[-1]]).df()


# --- results ----------------------------------------------------------------------------------------

COLUMN_TABLE = TableSchema(
    columns=[
        TableColumn("column", "string"), TableColumn("type", "string"), TableColumn("method", "string"),
        TableColumn("score", "float"), TableColumn("threshold", "float"), TableColumn("drifted", "bool"),
        TableColumn("note", "string"),
    ]
)
PARTITION_TABLE = TableSchema(
    columns=[
        TableColumn("partition", "string"), TableColumn("rows", "int"), TableColumn("drift_share", "float"),
        TableColumn("drifted_columns", "int"), TableColumn("severity", "string"),
        TableColumn("drifted", "string"), TableColumn("report", "string"),
    ]
)


def _round(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(float(value), 4)


def column_table(outcome: drift.PartitionDrift) -> MetadataValue:
    return MetadataValue.table(
        records=[
            TableRecord({"column": c.column, "type": c.kind, "method": c.method or "-", "score": _round(c.score),
                         "threshold": _round(c.threshold), "drifted": c.drifted, "note": c.note})
            for c in outcome.columns
        ],
        schema=COLUMN_TABLE,
    )


def _report(outcome: drift.PartitionDrift) -> Optional[str]:
    path = outcome.html or outcome.snapshot
    return str(path) if path else None


def _report_links(outcome: drift.PartitionDrift, name: str = "report") -> dict:
    """The report as a URL that opens in the browser (`<name>_url`) and as a path (`<name>`)."""
    path = _report(outcome)
    if not path:
        return {}
    url = drift.report_url(path)
    return {**({f"{name}_url": MetadataValue.url(url)} if url else {}), name: MetadataValue.path(path)}


def record_partitions(context: AssetCheckExecutionContext, record: AssetKey, outcomes: list[drift.PartitionDrift],
                      reference: drift.Reference) -> None:
    """One materialization of the record asset per partition: the figures the UI plots."""
    for outcome in outcomes:
        if not outcome.scored:
            continue
        metadata = {
            "drift_share": MetadataValue.float(round(outcome.share, 4)),
            "drifted_columns": MetadataValue.int(len(outcome.drifted)),
            "scored_columns": MetadataValue.int(len(outcome.scored)),
            "severity": MetadataValue.text(outcome.severity or "PASS"),
            "rows": MetadataValue.int(outcome.rows),
            "reference": MetadataValue.text(reference.source),
        }
        if len(outcome.scored) == 1:
            metadata["score"] = MetadataValue.float(round(float(outcome.scored[0].score), 4))
        metadata.update(_report_links(outcome))
        context.op_execution_context.log_event(
            AssetMaterialization(asset_key=record, partition=outcome.day.isoformat(), metadata=metadata,
                                 description=outcome.summary())
        )


def check_result(policy: drift.DriftPolicy, reference: drift.Reference, outcomes: list[drift.PartitionDrift],
                 subject: str, extra: Optional[dict] = None) -> AssetCheckResult:
    """One result for the run's partitions: fails when any partition drifts, with the worst severity."""
    measured = [o for o in outcomes if o.scored]
    failing = [o for o in measured if not o.passed]
    severity = AssetCheckSeverity.ERROR if any(o.severity == drift.ERROR for o in failing) else AssetCheckSeverity.WARN
    worst = max(measured, key=lambda o: (o.severity == drift.ERROR, o.share, o.day)) if measured else None
    shown = sorted(failing, key=lambda o: -o.share)[:SHOWN_IN_DESCRIPTION]
    if not measured:
        description = f"no {subject} rows in the checked partitions: nothing to compare"
    elif not failing:
        description = f"no drift in {len(measured)} partition(s) of {subject} against the {reference.source}"
    else:
        errors = sum(o.severity == drift.ERROR for o in failing)
        description = (
            f"{len(failing)} of {len(measured)} partition(s) drift ({errors} ERROR) against the {reference.source}: "
            + "; ".join(o.summary() for o in shown) + (" ..." if len(failing) > len(shown) else "")
        )
    metadata = {
        "checked_partitions": len(outcomes),
        "failed_partitions": len(failing),
        "failed_partition_keys": ", ".join(o.day.isoformat() for o in failing[:50]) + (" ..." if len(failing) > 50 else ""),
        "reference": reference.source,
        "reference_digest": reference.digest,
        "reference_rows": reference.rows,
        "reference_sample_rows": len(reference.sample),
        "error_share": policy.error_share if policy.error_share is not None else "none",
        "per_partition": MetadataValue.table(
            records=[
                TableRecord({"partition": o.day.isoformat(), "rows": o.rows, "drift_share": round(o.share, 4),
                             "drifted_columns": len(o.drifted), "severity": o.severity or ("PASS" if o.scored else "no rows"),
                             "drifted": ", ".join(o.drifted), "report": drift.report_url(_report(o)) or _report(o) or ""})
                for o in outcomes
            ],
            schema=PARTITION_TABLE,
        ),
        **(extra or {}),
    }
    if worst is not None:
        metadata.update(
            {
                "drift_share": MetadataValue.float(round(worst.share, 4)),
                "drifted_columns": MetadataValue.int(len(worst.drifted)),
                "scored_columns": MetadataValue.int(len(worst.scored)),
                "worst_partition": worst.day.isoformat(),
                "columns": column_table(worst),
            }
        )
        metadata.update(_report_links(worst))
    latest = next((o for o in reversed(outcomes) if o.scored), None)
    if latest is not None:
        metadata.update(_report_links(latest, "latest_report"))
    return AssetCheckResult(passed=not failing, severity=severity, metadata=metadata, description=description)



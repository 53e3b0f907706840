"""Drift checks: features and predictions of each partition against the champion's training data.

`feature_drift` on features/flight_features and `prediction_drift` on ml/delay_predictions run the
drift library (`data_platform.drift`, `data_platform.drift_results`) over the partitions of the run
(a range run gets one result, with every partition's outcome in its metadata; launched alone, a
check covers every stored partition).

Retraining signal: `FEATURE_DRIFT_CHECK` failing with `AssetCheckSeverity.ERROR` means the share of
drifted feature columns reached the policy's `error_share`; a sensor needs nothing else, e.g.
`is_retraining_signal(evaluation)` on an ASSET_CHECK_EVALUATION event.

Plotting: Dagster plots numeric metadata of materializations, not of check results. Each check
therefore also records, per partition, a materialization of a record asset (`monitoring/feature_drift`,
`monitoring/prediction_drift`: `AssetSpec`s, never executed on their own) carrying the drift share,
the drifted-column count and the report path. Measured once, where the check runs; the UI plots the
drift share across partitions on the record asset's page.
"""


import time
from typing import Optional

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    AssetSpec,
    asset_check,
)
from dagster_duckdb import DuckDBResource

from data_platform import drift, training_set
from data_platform.assets.features import FEATURES_KEY, PARTITIONS
from data_platform.features import CONTRACT as FEATURES_CONTRACT
from data_platform.features import CATEGORICAL_FEATURES, FLIGHT_KEY, NUMERICAL_FEATURES
from data_platform.assets.ml import MODEL_KEY, PREDICTIONS_KEY
from data_platform.drift_results import check_result, days_of_run, read_rows, record_partitions, window_digest
from data_platform.metadata import OWNER
from data_platform.ml_contracts import PREDICTIONS
from data_platform.mlflow_store import MlflowStore

FEATURE_DRIFT = "feature_drift"
PREDICTION_DRIFT = "prediction_drift"
FEATURE_DRIFT_CHECK = AssetCheckKey(FEATURES_KEY, FEATURE_DRIFT)
PREDICTION_DRIFT_CHECK = AssetCheckKey(PREDICTIONS_KEY, PREDICTION_DRIFT)
FEATURE_DRIFT_RECORD = AssetKey(["monitoring", FEATURE_DRIFT])
PREDICTION_DRIFT_RECORD = AssetKey(["monitoring", PREDICTION_DRIFT])
SCORE = "probability"

# --- policies -------------------------------------------------------------------------------------

# One day against months of training data always differs on these: not scored, listed with why.
PARTITION_CONSTANT = {
    "day_of_week": "constant within a daily partition (one weekday against all of them)",
    "day_of_year": "constant within a daily partition (moves every day by construction)",
    "month": "constant within a daily partition (one month against the training months)",
    "days_to_holiday": "constant within a daily partition (one value per day by construction)",
}
# Integer columns with at most a handful of values: compared as shares per value, the way Evidently
# itself treats numerical columns with five values or fewer.
FEW_VALUES = {"plane_engines": "1 to 4 engines: shares per value (Jensen-Shannon)"}


def feature_policy() -> drift.DriftPolicy:
    """Every feature column with its declared type; Wasserstein for numericals and Jensen-Shannon for
    categoricals (what Evidently's preset picks for them on large references), thresholds calibrated."""
    columns = [drift.ColumnPolicy(name, drift.CATEGORICAL, "jensenshannon") for name in CATEGORICAL_FEATURES]
    for name in NUMERICAL_FEATURES:
        if name in PARTITION_CONSTANT:
            columns.append(drift.ColumnPolicy(name, drift.NUMERICAL, None, reason=PARTITION_CONSTANT[name]))
        elif name in FEW_VALUES:
            columns.append(drift.ColumnPolicy(name, drift.NUMERICAL, "jensenshannon", reason=FEW_VALUES[name]))
        else:
            columns.append(drift.ColumnPolicy(name, drift.NUMERICAL, "wasserstein"))
    return drift.DriftPolicy(FEATURE_DRIFT, tuple(columns), key=tuple(FLIGHT_KEY), error_share=0.25)


def prediction_policy() -> drift.DriftPolicy:
    """The score distribution: PSI, WARN past the calibrated threshold, ERROR at twice it."""
    score = drift.ColumnPolicy(SCORE, drift.NUMERICAL, "psi", error_factor=2.0,
                               reason="PSI of the delay probability; ERROR at twice the threshold")
    return drift.DriftPolicy(PREDICTION_DRIFT, (score,), key=tuple(FLIGHT_KEY), error_share=None)


def is_retraining_signal(evaluation) -> bool:
    """True for an AssetCheckEvaluation of FEATURE_DRIFT_CHECK that failed with ERROR severity."""
    return (
        evaluation.asset_check_key == FEATURE_DRIFT_CHECK
        and not evaluation.passed
        and evaluation.severity == AssetCheckSeverity.ERROR
    )


# --- references -----------------------------------------------------------------------------------


def _champion(mlflow: MlflowStore):
    """(model version, training digest, training path) of the champion, or None."""
    version = mlflow.version_by_alias()
    if version is None or not version.run_id:
        return None
    tags = mlflow.client().get_run(version.run_id).data.tags
    return version, tags[training_set.TRAINING_DIGEST_TAG], tags[training_set.TRAINING_PATH_TAG]


def feature_reference(policy: drift.DriftPolicy, conn, mlflow: MlflowStore) -> Optional[drift.Reference]:
    window = drift.reference_window()
    if window is not None:
        return drift.prepare_reference(
            policy, window_digest(conn, FEATURES_CONTRACT.name, window), f"partitions {window[0]}..{window[1]}",
            lambda: training_set.read_feature_window(conn, *window),
        )
    champion = _champion(mlflow)
    if champion is None:
        return None
    version, digest, path = champion
    source = f"training set of {mlflow.model_name} v{version.version} (champion), snapshot {digest[:12]}"
    return drift.prepare_reference(policy, digest, source, lambda: training_set.read_snapshot(path, digest))


def prediction_reference(policy: drift.DriftPolicy, conn, mlflow: MlflowStore) -> Optional[drift.Reference]:
    """The champion's scores of its own training rows (or of the reference window's rows)."""
    champion = _champion(mlflow)
    if champion is None:
        return None
    version, digest, path = champion
    window = drift.reference_window()
    if window is not None:
        identity = f"{window_digest(conn, FEATURES_CONTRACT.name, window)}-v{version.version}"
        source = f"{mlflow.model_name} v{version.version} scores of partitions {window[0]}..{window[1]}"
        rows = lambda: training_set.read_feature_window(conn, *window)  # noqa: E731
    else:
        identity = f"{digest}-v{version.version}"
        source = f"{mlflow.model_name} v{version.version} (champion) scores of its training set {digest[:12]}"
        rows = lambda: training_set.read_snapshot(path, digest)  # noqa: E731
    return drift.prepare_reference(policy, identity, source, lambda: _scored(mlflow, rows()))


def _scored(mlflow: MlflowStore, rows: "pd.DataFrame") -> "pd.DataFrame":
    from data_platform import modeling

    model, _ = mlflow.load_model()
    return rows[FLIGHT_KEY].assign(**{SCORE: modeling.predict(model, rows)})

def _no_reference(subject: str) -> AssetCheckResult:
    return AssetCheckResult(
        passed=True,
        metadata={"reference": "none"},
        description=f"{subject}: no champion model yet, so no training data to compare with (set "
        f"{drift.REFERENCE_ENV}=FIRST..LAST to compare with a window of feature partitions)",
    )


# --- the checks ---------------------------------------------------------------------------------------


@asset_check(
    asset=FEATURES_KEY,
    name=FEATURE_DRIFT,
    additional_deps=[MODEL_KEY],
    
    blocking=False,
    description=(
        "Every feature column of each partition against the champion's training set (Evidently; effect "
        "sizes with calibrated per-column thresholds). WARN when a column drifts; ERROR when the share of "
        "drifted columns reaches the policy's error_share: the retraining signal (a sensor needs only "
        "FEATURE_DRIFT_CHECK and AssetCheckSeverity.ERROR). Reports under $DATA_PLATFORM_HOME/reports/drift."
    ),
)
def feature_drift(context: AssetCheckExecutionContext, warehouse: DuckDBResource, mlflow: MlflowStore) -> AssetCheckResult:
    policy = drift.configured(feature_policy())
    measured = _measure(context, warehouse, mlflow, policy, feature_reference, FEATURES_CONTRACT.name,
                        [c.column for c in policy.columns], FEATURE_DRIFT_RECORD)
    if measured is None:
        return _no_reference("feature drift")
    reference, outcomes, _ = measured
    return check_result(policy, reference, outcomes, "features")


def _measure(context: AssetCheckExecutionContext, warehouse: DuckDBResource, mlflow: MlflowStore,
             policy: drift.DriftPolicy, find_reference, table: str, columns: list[str], record: AssetKey):
    """(reference, per-partition outcomes, rows read) for the run's partitions; None without reference."""
    started = time.monotonic()
    with warehouse.get_connection() as conn:
        reference = find_reference(policy, conn, mlflow)
        if reference is None:
            return None
        days = days_of_run(context, conn, table)
        frame = read_rows(conn, table, columns, days)
    ready = time.monotonic()
    outcomes = drift.measure_days(drift.DriftMeter(policy, reference, drift.ReportStore()), frame, days) if days else []
    record_partitions(context, record, outcomes, reference)
    for outcome in outcomes:
        context.log.info(outcome.summary())
    context.log.info(f"reference and rows ready in {ready - started:.2f} s; "
                     f"{len(outcomes)} partition(s) measured in {time.monotonic() - ready:.2f} s")
    return reference, outcomes, frame


@asset_check(
    asset=PREDICTIONS_KEY,
    name=PREDICTION_DRIFT,
    additional_deps=[MODEL_KEY],
    
    blocking=False,
    description=(
        "Distribution of each partition's delay probabilities against the champion's scores of its own "
        "training set (PSI, calibrated threshold): WARN past the threshold, ERROR at twice it."
    ),
)
def prediction_drift(context: AssetCheckExecutionContext, warehouse: DuckDBResource, mlflow: MlflowStore) -> AssetCheckResult:
    policy = drift.configured(prediction_policy())
    measured = _measure(context, warehouse, mlflow, policy, prediction_reference, PREDICTIONS.name,
                        [SCORE, "model_version"], PREDICTION_DRIFT_RECORD)
    if measured is None:
        return _no_reference("prediction drift")
    reference, outcomes, frame = measured
    # Predictions scored by an earlier champion are still compared with the current one's scores.
    versions = sorted(set(frame["model_version"].dropna().astype(str))) if len(frame) else []
    return check_result(policy, reference, outcomes, "predictions",
                        extra={"scored_by_model_versions": ", ".join(versions) or "-"})


def _record_spec(key: AssetKey, check: AssetCheckKey, what: str) -> AssetSpec:
    return AssetSpec(
        key=key,
        deps=[check.asset_key, MODEL_KEY],
        partitions_def=PARTITIONS,
        group_name="monitoring",
        owners=[OWNER],
        kinds={"evidently"},
        description=(
            f"Drift of {what} per partition, recorded by the `{check.name}` check on "
            f"{check.asset_key.to_user_string()} (not materialized on its own): drift_share (plotted across "
            "partitions), drifted_columns, severity and the path of the Evidently report."
        ),
    )


drift_records = [
    _record_spec(FEATURE_DRIFT_RECORD, FEATURE_DRIFT_CHECK, "the feature columns"),
    _record_spec(PREDICTION_DRIFT_RECORD, PREDICTION_DRIFT_CHECK, "the predicted delay probability"),
]
drift_checks = [feature_drift, prediction_drift]

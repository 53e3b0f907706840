"""ML layer: the delay model (tracked in MLflow), daily predictions and daily model performance.

`ml/delay_model` trains on a configured window of feature partitions and evaluates on a later
holdout window (a time split: a random split leaks same-day weather and congestion). The rows of
both windows are immutable snapshots whose digests MLflow records. Every model is registered; the
alias `champion` moves to it only when it beats the base-rate baseline and the current champion's
ROC AUC on the same holdout rows, otherwise it gets `challenger`.

`ml/delay_predictions` scores each day's features with `models:/<name>@champion`;
`ml/model_performance` compares those predictions with the day's labels.
"""


import json
import datetime as dt
import importlib.metadata
import math
from typing import Optional

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    Config,
    DataVersion,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
    multi_asset,
)
from dagster_duckdb import DuckDBResource
from pydantic import Field

from data_platform import training_set
from data_platform.assets.features import CODE_VERSION as FEATURES_CODE_VERSION
from data_platform.assets.features import FEATURES_KEY, PARTITIONS
from data_platform.features import CONTRACT as FEATURES_CONTRACT
from data_platform.features import CUTOFF_HOURS, FEATURES, FLIGHT_KEY, LABEL
from data_platform.metadata import OWNER, combined_version, record_partitions, stored_in, table_definition_metadata
from data_platform.ml_contracts import PERFORMANCE, PREDICTIONS
from data_platform.mlflow_store import CHALLENGER, CHAMPION, DAGSTER_RUN_TAG, MlflowStore
from data_platform.partitions import run_days, single_run
from data_platform.settings import mlflow_ui_url
from data_platform.storage import attached_version, partition_stats, replace_days, table_exists

CODE_VERSION = "1"
MODEL_KEY = AssetKey(["ml", "delay_model"])
MODEL_OP = "__".join(MODEL_KEY.path)
PREDICTIONS_KEY = AssetKey(["ml", "delay_predictions"])
PERFORMANCE_KEY = AssetKey(["ml", "model_performance"])
BASELINE_CHECK = "beats_base_rate_baseline"
# What every daily ML asset declares: one run per backfill range, one DuckDB writer at a time.
DAILY = dict(owners=[OWNER], code_version=CODE_VERSION, partitions_def=PARTITIONS,
             backfill_policy=single_run)
PIP_PACKAGES = ["mlflow", "scikit-learn", "skops", "pandas", "numpy", "scipy"]


class DelayModelConfig(Config):
    """Windows of feature partitions and hyper-parameters.

    By default the windows follow the newest stored feature day N: hold out the `holdout_days` ending
    with N, leave a gap of `gap_days` before them (the holdout's trailing features never read a
    training day), train on the `train_days` before the gap, from the oldest stored feature day at
    the earliest. On the bundled replay (N = the year's last day) that is: train January-September,
    gap October, hold out November-December. Explicit dates (all four, inclusive, YYYY-MM-DD)
    replace them, and then every day of both windows must have features."""

    train_first: str = Field(default="", description="First day of the training window (empty: from train_days).")
    train_last: str = Field(default="", description="Last day of the training window (empty: from gap_days).")
    holdout_first: str = Field(default="", description="First day of the holdout window (empty: from holdout_days).")
    holdout_last: str = Field(default="", description="Last day of the holdout window (empty: the newest feature day).")
    holdout_days: int = Field(default=61, ge=1, description="Days held out, ending with the newest feature day.")
    gap_days: int = Field(default=31, ge=0, description="Days between the training and the holdout window.")
    train_days: int = Field(default=273, ge=1, description="Days of the training window, at most.")
    min_train_days: int = Field(default=28, ge=1, description="Fewest stored feature days to train on; fewer: the step is skipped.")
    max_iter: int = Field(default=300, description="Boosting iterations.")
    learning_rate: float = Field(default=0.05)
    max_leaf_nodes: int = Field(default=31)
    min_samples_leaf: int = Field(default=100)
    l2_regularization: float = Field(default=1.0)
    random_state: int = Field(default=0, description="Seed: the same snapshot and params give the same model.")
    threads: int = Field(default=1, ge=1, description="OpenMP threads for fitting (1 is fastest on a busy 2-core machine).")

    def explicit(self) -> bool:
        dates = [self.train_first, self.train_last, self.holdout_first, self.holdout_last]
        if any(dates) and not all(dates):
            raise Failure(description="set all four of train_first, train_last, holdout_first, holdout_last, "
                          f"or none (windows from holdout_days, gap_days, train_days); got {dates}", allow_retries=False)
        return all(dates)

    def relative_windows(self, feature_days: list[dt.date]) -> tuple[Optional[tuple], str]:
        """The windows the stored feature days allow, or None and why none do."""
        if not feature_days:
            return None, "no feature partition is stored yet"
        oldest, newest = min(feature_days), max(feature_days)
        holdout_first = max(oldest, newest - dt.timedelta(days=self.holdout_days - 1))
        train_last = newest - dt.timedelta(days=self.holdout_days + self.gap_days)
        train_first = max(oldest, train_last - dt.timedelta(days=self.train_days - 1))
        trainable = sum(train_first <= day <= train_last for day in feature_days)
        if trainable < self.min_train_days:
            return None, (
                f"the stored features ({len(feature_days)} day(s), {oldest}..{newest}) are too few to train on: "
                f"{trainable} day(s) before the {self.gap_days}-day gap and the {self.holdout_days}-day holdout ending "
                f"{newest}, and min_train_days is {self.min_train_days}. Materialize features/flight_features for "
                "earlier days, or set shorter windows in the run config"
            )
        return (train_first, train_last, holdout_first, newest), ""

    def windows(self) -> tuple[dt.date, dt.date, dt.date, dt.date]:
        days = [dt.date.fromisoformat(value) for value in
                (self.train_first, self.train_last, self.holdout_first, self.holdout_last)]
        if not (days[0] <= days[1] < days[2] <= days[3]):
            raise Failure(
                description=f"windows must satisfy train_first <= train_last < holdout_first <= holdout_last, "
                f"got {days[0]}..{days[1]} then {days[2]}..{days[3]}",
                allow_retries=False,
            )
        return days[0], days[1], days[2], days[3]

    def model_params(self):
        from data_platform.modeling import ModelParams

        return ModelParams(**{name: getattr(self, name) for name in ModelParams.__dataclass_fields__})


def run_config_for_range(first: str | dt.date, last: str | dt.date, **params) -> dict:
    """Run config of ml/delay_model for a short range of feature partitions (a demo's month): the
    first week is skipped (it has no trailing history), the next two thirds train, the rest is the
    holdout. `params` overrides hyper-parameters."""
    first, last = (dt.date.fromisoformat(str(day)) for day in (first, last))
    start = first + dt.timedelta(days=7)
    days = (last - start).days + 1
    if days < 3:
        raise ValueError(f"{first}..{last} is too short: it needs at least 10 days")
    train_last = start + dt.timedelta(days=max(1, days * 2 // 3) - 1)
    config = {"train_first": str(start), "train_last": str(train_last),
              "holdout_first": str(train_last + dt.timedelta(days=1)), "holdout_last": str(last), **params}
    return {"ops": {MODEL_OP: {"config": config}}}


def pip_requirements() -> list[str]:
    """Pinned requirements of the logged model (inferring them costs 5-14 s per model)."""
    return [f"{name}=={importlib.metadata.version(name)}" for name in PIP_PACKAGES]


def _read_windows(conn, windows, explicit: bool):
    train_first, train_last, holdout_first, holdout_last = windows
    missing = (training_set.missing_feature_days(conn, train_first, train_last)
               + training_set.missing_feature_days(conn, holdout_first, holdout_last))
    if missing and explicit:
        raise Failure(
            description=f"{len(missing)} day(s) of the training/holdout windows have no features "
            f"(first: {missing[0]}); materialize features/flight_features for them first",
            allow_retries=False,
        )
    train = training_set.read_feature_window(conn, train_first, train_last)
    holdout = training_set.read_feature_window(conn, holdout_first, holdout_last)
    versions = {
        "training": partition_stats(conn, FEATURES_CONTRACT, train_first, train_last),
        "holdout": partition_stats(conn, FEATURES_CONTRACT, holdout_first, holdout_last),
    }
    return train, holdout, versions


def _finite(values: dict[str, float]) -> dict[str, float]:
    return {name: value for name, value in values.items() if value is not None and math.isfinite(value)}


def _decide(store: MlflowStore, challenger_metrics: dict, passed_baseline: bool, baseline_reason: str,
            holdout: "pd.DataFrame", labels) -> dict:
    """Whether the new version becomes champion, and why (same holdout rows for both models)."""
    from data_platform import modeling

    champion = store.version_by_alias(CHAMPION)
    decision = {"previous_champion": str(champion.version) if champion else None, "champion_metrics": {}}
    if not passed_baseline:
        return {**decision, "promote": False, "reason": f"not promoted: {baseline_reason}"}
    if champion is None:
        return {**decision, "promote": True, "reason": "promoted: no champion yet, and it " + baseline_reason}
    try:
        champion_model, _ = store.load_model(CHAMPION)
        champion_metrics = modeling.metrics(labels, modeling.predict(champion_model, holdout))
    except Exception as error:  # a champion that cannot score today's features cannot defend its title
        return {**decision, "promote": True,
                "reason": f"promoted: champion v{champion.version} cannot score this holdout ({error})"}
    decision["champion_metrics"] = champion_metrics
    new, old = challenger_metrics["roc_auc"], champion_metrics["roc_auc"]
    if new > old:
        reason = f"promoted: holdout ROC AUC {new:.4f} beats champion v{champion.version}'s {old:.4f} on the same rows"
        return {**decision, "promote": True, "reason": reason}
    reason = (f"not promoted: holdout ROC AUC {new:.4f} does not beat champion v{champion.version}'s "
              f"{old:.4f} on the same rows")
    return {**decision, "promote": False, "reason": reason}


# A multi-asset of one, for `can_subset`, which makes the baseline check's result optional: when the
# stored features are too few to train on, the step records "not trained" and the reason, and the
# run (a UI backfill of any range) stays green. It is not skipped: Dagster 1.13 marks a backfill
# whose run succeeds without materializing a targeted asset COMPLETED_FAILED.
@multi_asset(
    name=MODEL_OP,
    specs=[AssetSpec(
        MODEL_KEY,
        group_name="ml",
        description=(
            "Gradient-boosted classifier (scikit-learn HistGradientBoosting) predicting arr_delay > 15 min "
            f"{CUTOFF_HOURS} h before departure, trained on a window of feature partitions and evaluated on a "
            "later holdout. Tracked in MLflow (params, metrics, model, snapshot digests); registered, and "
            "made `champion` only when it beats the current champion on the same holdout. When the stored "
            "features are too few to train on, a materialization says `trained: false` and why."
        ),
        owners=[OWNER],
        kinds={"mlflow", "scikit-learn"},
        code_version=CODE_VERSION,
        deps=[FEATURES_KEY],
        skippable=True,
    )],
    can_subset=True,
    
    check_specs=[
        AssetCheckSpec(
            BASELINE_CHECK,
            asset=MODEL_KEY,
            blocking=True,
            description="The model beats predicting the training base rate on the holdout (log loss, Brier, ROC AUC > 0.5).",
        )
    ],
)
def delay_model(context: AssetExecutionContext, config: DelayModelConfig, warehouse: DuckDBResource, mlflow: MlflowStore):
    from mlflow.models import infer_signature

    from data_platform import modeling

    explicit = config.explicit()
    params = config.model_params()
    with warehouse.get_connection(context) as conn:
        if explicit:
            windows = config.windows()
        else:
            windows, reason = config.relative_windows(training_set.stored_feature_days(conn))
            if windows is None:
                context.log.warning(f"{MODEL_KEY.to_user_string()} not trained: {reason}")
                champion = mlflow.version_by_alias(CHAMPION)
                yield MaterializeResult(
                    metadata={"trained": False, "decision": f"not trained: {reason}",
                              "champion_version": str(champion.version) if champion else "none"},
                    data_version=DataVersion(f"{mlflow.model_name}-v{champion.version}" if champion else "no-model"),
                )
                return
        train, holdout, versions = _read_windows(conn, windows, explicit)
        table_versions = {FEATURES_CONTRACT.name: attached_version(conn, FEATURES_CONTRACT.name)}
    train_snapshot = training_set.write_snapshot(train)
    holdout_snapshot = training_set.write_snapshot(holdout)
    mlflow.setup()
    abandoned = mlflow.fail_abandoned_runs(lambda run_id: _dagster_run_active(context, run_id))
    if abandoned:
        context.log.warning(f"marked {len(abandoned)} abandoned MLflow run(s) FAILED: {abandoned}")

    data_versions = {name: combined_version(stats).value for name, stats in versions.items()}
    tags = {
        DAGSTER_RUN_TAG: context.run.run_id,
        "dagster.asset_key": MODEL_KEY.to_user_string(),
        "dagster.code_version": CODE_VERSION,
        "features.code_version": FEATURES_CODE_VERSION,
        "features.data_version.training": data_versions["training"],
        "features.data_version.holdout": data_versions["holdout"],
        training_set.TRAINING_DIGEST_TAG: train_snapshot.digest,
        training_set.TRAINING_PATH_TAG: str(train_snapshot.path),
        training_set.HOLDOUT_DIGEST_TAG: holdout_snapshot.digest,
        training_set.HOLDOUT_PATH_TAG: str(holdout_snapshot.path),
        training_set.TABLE_VERSIONS_TAG: json.dumps(table_versions),
    }
    train_y, holdout_y = modeling.labels(train), modeling.labels(holdout)
    with mlflow.run(run_name=f"delay_model {context.run.run_id[:8]}", tags=tags) as run:
        import mlflow as tracking
        from mlflow import data as mlflow_data
        from mlflow import sklearn as mlflow_sklearn

        tracking.log_params({
            **params.as_dict(),
            "train_first": str(windows[0]), "train_last": str(windows[1]),
            "holdout_first": str(windows[2]), "holdout_last": str(windows[3]),
            "cutoff_hours": CUTOFF_HOURS, "label": LABEL, "features": ",".join(FEATURES),
            "training_rows": len(train), "holdout_rows": len(holdout), "threads": config.threads,
        })
        for context_name, frame, snapshot in (("training", train, train_snapshot), ("evaluation", holdout, holdout_snapshot)):
            dataset = mlflow_data.from_pandas(
                frame, source=snapshot.path.as_uri(), targets=LABEL,
                name=f"{context_name}_set", digest=snapshot.digest[:32],
            )
            tracking.log_input(dataset, context=context_name, tags={"sha256": snapshot.digest})
        tracking.log_dict(
            {name: {str(day): s.data_version for day, s in stats.items()} for name, stats in versions.items()},
            "feature_data_versions.json",
        )

        started = dt.datetime.now()
        model = modeling.fit(train, params, threads=config.threads)
        training_seconds = (dt.datetime.now() - started).total_seconds()
        holdout_probability = modeling.predict(model, holdout)
        holdout_metrics = modeling.metrics(holdout_y, holdout_probability)
        train_metrics = modeling.metrics(train_y, modeling.predict(model, train))
        baseline = modeling.baseline_metrics(train_y, holdout_y)
        passed, baseline_reason = modeling.beats_baseline(holdout_metrics, baseline)
        tracking.log_metrics({
            **{f"holdout_{k}": v for k, v in _finite(holdout_metrics).items()},
            **{f"train_{k}": v for k, v in _finite(train_metrics).items()},
            **{f"baseline_{k}": v for k, v in _finite(baseline).items()},
            "training_seconds": training_seconds,
        })

        inputs = modeling.model_inputs(holdout.head(200))
        info = mlflow_sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(inputs, model.predict_proba(inputs)),
            pip_requirements=pip_requirements(),
            serialization_format="skops",
            skops_trusted_types=modeling.SKOPS_TRUSTED_TYPES,
            pyfunc_predict_fn="predict_proba",
            registered_model_name=mlflow.model_name,
        )
        version = str(info.registered_model_version)
        decision = _decide(mlflow, holdout_metrics, passed, baseline_reason, holdout, holdout_y)
        if decision["champion_metrics"]:
            tracking.log_metrics({f"champion_{k}": v for k, v in _finite(decision["champion_metrics"]).items()})
        mlflow.set_alias(version, CHAMPION if decision["promote"] else CHALLENGER)
        client = mlflow.client()
        client.set_model_version_tag(mlflow.model_name, version, "decision", decision["reason"])
        client.set_model_version_tag(mlflow.model_name, version, DAGSTER_RUN_TAG, context.run.run_id)
        tracking.set_tags({"registry.version": version, "registry.promoted": str(decision["promote"]).lower(),
                           "registry.decision": decision["reason"]})
        run_id, experiment_id = run.info.run_id, run.info.experiment_id

    context.log.info(f"model v{version}: {decision['reason']}")
    champion = mlflow.version_by_alias(CHAMPION)
    yield MaterializeResult(
        metadata={
            "mlflow_run_id": run_id,
            # one click from the asset page to the run and the registered version in the MLflow UI
            "mlflow_run": MetadataValue.url(mlflow_run_url(experiment_id, run_id)),
            "mlflow_model_version": MetadataValue.url(mlflow_version_url(mlflow.model_name, version)),
            "model_name": mlflow.model_name,
            "model_version": version,
            "model_uri": f"models:/{mlflow.model_name}/{version}",
            "promoted": decision["promote"],
            "decision": decision["reason"],
            "champion_version": str(champion.version) if champion else "none",
            "previous_champion_version": decision["previous_champion"] or "none",
            **{f"holdout_{k}": v for k, v in _finite(holdout_metrics).items()},
            **{f"baseline_{k}": v for k, v in _finite(baseline).items()},
            **{f"champion_{k}": v for k, v in _finite(decision["champion_metrics"]).items()},
            "training_rows": len(train),
            "holdout_rows": len(holdout),
            "training_seconds": training_seconds,
            "training_set_digest": train_snapshot.digest,
            "training_set_path": MetadataValue.path(str(train_snapshot.path)),
            "holdout_set_digest": holdout_snapshot.digest,
            "windows": f"train {windows[0]}..{windows[1]}, holdout {windows[2]}..{windows[3]}",
        },
        data_version=DataVersion(f"{mlflow.model_name}-v{version}"),
        check_results=[
            AssetCheckResult(
                check_name=BASELINE_CHECK,
                passed=passed,
                severity=AssetCheckSeverity.ERROR,
                description=baseline_reason,
                metadata={
                    "holdout_log_loss": holdout_metrics["log_loss"],
                    "baseline_log_loss": baseline["log_loss"],
                    "holdout_brier": holdout_metrics["brier"],
                    "baseline_brier": baseline["brier"],
                    "holdout_roc_auc": _finite(holdout_metrics).get("roc_auc", 0.0),
                    "model_version": version,
                },
            )
        ],
    )


def mlflow_run_url(experiment_id: str, run_id: str) -> str:
    """The run's page in the MLflow UI (DATA_PLATFORM_MLFLOW_UI_URL, default http://127.0.0.1:5000)."""
    return f"{mlflow_ui_url()}/#/experiments/{experiment_id}/runs/{run_id}"


def mlflow_version_url(model_name: str, version: str) -> str:
    """A registered model version's page in the MLflow UI."""
    return f"{mlflow_ui_url()}/#/models/{model_name}/versions/{version}"


def _dagster_run_active(context: AssetExecutionContext, run_id: str) -> bool:
    if run_id == context.run.run_id:
        return True
    run = context.instance.get_run_by_id(run_id)
    return run is not None and not run.is_finished


def _read_days(conn, first: dt.date, last: dt.date) -> "pd.DataFrame":
    missing = training_set.missing_feature_days(conn, first, last)
    if missing:
        raise Failure(
            description=f"no features for {len(missing)} day(s) of {first}..{last} (first: {missing[0]}); "
            "materialize features/flight_features for them first",
            allow_retries=False,
        )
    return training_set.read_feature_window(conn, first, last)


@asset(
    key=PREDICTIONS_KEY.path,
    group_name="ml",
    description=(
        "Probability of arriving more than 15 minutes late for every completed flight of the day, scored "
        "by the model version holding the `champion` alias (models:/<name>@champion)."
    ),
    kinds={"duckdb", "mlflow", "scikit-learn"},
    deps=[FEATURES_KEY, MODEL_KEY],
    **DAILY,
    metadata=table_definition_metadata(PREDICTIONS),
)
def delay_predictions(context: AssetExecutionContext, warehouse: DuckDBResource, mlflow: MlflowStore) -> MaterializeResult:
    from data_platform import modeling

    first, last = run_days(context)
    try:
        model, version = mlflow.load_model(CHAMPION)
    except LookupError as error:  # no model good enough yet (a first backfill of a few days): say so
        reason = f"not scored: {error}; materialize ml/delay_model on enough features first"
        context.log.warning(f"{first}..{last} {reason}")
        return MaterializeResult(metadata={"scored": False, "decision": reason, "rows_in_run": 0})
    with warehouse.get_connection(context) as conn:
        frame = _read_days(conn, first, last)
        scored = frame[FLIGHT_KEY].assign(
            probability=modeling.predict(model, frame), model_name=mlflow.model_name, model_version=str(version.version),
        )
        conn.register("scored", scored)
        replace_days(conn, PREDICTIONS, "SELECT * FROM scored", [], first, last)
        conn.unregister("scored")
        stats = partition_stats(conn, PREDICTIONS, first, last)
    mean_probability = scored.groupby(scored["day"].dt.date)["probability"].mean().to_dict()
    record_partitions(context, stats, mean_probability=mean_probability)
    context.log.info(f"scored {len(scored):,} flights of {first}..{last} with {mlflow.model_name} v{version.version}")
    return MaterializeResult(
        metadata={"rows_in_run": len(scored), "model_version": str(version.version),
                  "model_uri": f"models:/{mlflow.model_name}/{version.version}"},
        data_version=combined_version(stats),
    )


def _scored_without_champion(context: AssetExecutionContext) -> bool:
    """Whether the newest ml/delay_predictions materialization says it scored nothing (no champion)."""
    event = context.instance.get_latest_materialization_event(PREDICTIONS_KEY)
    scored = event.asset_materialization.metadata.get("scored") if event and event.asset_materialization else None
    return scored is not None and scored.value is False


PERFORMANCE_QUERY = f"""
SELECT p.day, p.probability, p.model_version, f.{LABEL}
FROM {PREDICTIONS.name} p
JOIN {FEATURES_CONTRACT.name} f USING ({", ".join(FLIGHT_KEY)})
WHERE p.day BETWEEN ? AND ?
"""


@asset(
    key=PERFORMANCE_KEY.path,
    group_name="ml",
    description=(
        "Daily quality of the stored predictions against that day's labels: ROC AUC, log loss, Brier, "
        "predicted vs actual positive rate, as numeric metadata per partition (plotted in the UI)."
    ),
    kinds={"duckdb", "scikit-learn"},
    deps=[PREDICTIONS_KEY, FEATURES_KEY],
    **DAILY,
    metadata=table_definition_metadata(PERFORMANCE),
)
def model_performance(context: AssetExecutionContext, warehouse: DuckDBResource) -> MaterializeResult:
    import pandas as pd

    from data_platform import modeling

    first, last = run_days(context)
    with warehouse.get_connection(context) as conn:
        stored = table_exists(conn, PREDICTIONS.name)
        joined = conn.execute(PERFORMANCE_QUERY, [first, last]).df() if stored else None
        scored_days = set(joined["day"].dt.date) if stored else set()
        missing = [day for day in pd.date_range(first, last).date if day not in scored_days]
        if missing and not _scored_without_champion(context):
            raise Failure(
                description=f"no predictions for {len(missing)} day(s) of {first}..{last} (first: {missing[0]}); "
                "materialize ml/delay_predictions for them first",
                allow_retries=False,
            )
        if missing:  # predictions of this run were not scored: no champion yet
            reason = f"not evaluated: no champion scored {first}..{last} (see ml/delay_predictions)"
            context.log.warning(reason)
            return MaterializeResult(metadata={"evaluated": False, "decision": reason, "days_in_run": 0})
        rows = []
        for day, group in joined.groupby(joined["day"].dt.date):
            values = modeling.metrics(group[LABEL].astype(bool).to_numpy().astype(int), group["probability"].to_numpy())
            rows.append({
                "day": day, "model_version": ",".join(sorted(group["model_version"].unique())), "flights": len(group),
                "roc_auc": values["roc_auc"] if math.isfinite(values["roc_auc"]) else None,
                "log_loss": values["log_loss"], "brier": values["brier"],
                "predicted_positive_rate": values["predicted_positive_rate"],
                "actual_positive_rate": values["positive_rate"],
            })
        performance = pd.DataFrame(rows)
        conn.register("performance", performance)
        replace_days(conn, PERFORMANCE, "SELECT * FROM performance", [], first, last)
        conn.unregister("performance")
        stats = partition_stats(conn, PERFORMANCE, first, last)
    by_day = performance.set_index("day")
    per_day = {
        name: {day: float(value) for day, value in by_day[name].items() if value is not None and math.isfinite(value)}
        for name in ("roc_auc", "log_loss", "brier", "predicted_positive_rate", "actual_positive_rate")
    }
    for day, figures in stats.items():
        context.add_asset_metadata(
            {
                "dagster/row_count": figures.rows,
                "partition_data_version": figures.data_version,
                **stored_in(figures),
                "scored_flights": int(by_day.loc[day, "flights"]),
                "model_version": str(by_day.loc[day, "model_version"]),
                **{name: values[day] for name, values in per_day.items() if day in values},
            },
            partition_key=day.isoformat(),
        )
    return MaterializeResult(
        metadata={"days_in_run": len(performance), "mean_log_loss": float(performance["log_loss"].mean())},
        data_version=combined_version(stats),
    )


ml_assets = [delay_model, delay_predictions, model_performance]

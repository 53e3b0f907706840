"""The delay model end to end on real January data: MLflow tracking, registry aliases, the baseline
check, daily predictions and performance, and retraining reproducibility from a recorded snapshot."""

from __future__ import annotations

import pandas as pd
import pytest
from dagster import AssetKey, AssetSelection, materialize

from data_platform import modeling, training_set
from data_platform.assets.features import FEATURES_KEY
from data_platform.features import LABEL
from data_platform.assets.ml import BASELINE_CHECK, MODEL_KEY, DelayModelConfig
from data_platform.runner import materialize_days
from data_platform.settings import mlflow_ui_url
from data_platform_tests.ml_fixtures import seeded_home, seeded_warehouse  # noqa: F401  (fixtures)

WINDOWS = dict(train_first="2013-01-06", train_last="2013-01-14", holdout_first="2013-01-16", holdout_last="2013-01-21")
SMALL = dict(max_iter=60, min_samples_leaf=40)
SCORED = ("2013-01-16", "2013-01-21")


def train(instance, resources, **config):
    """One run of ml/delay_model (and its check) with the given run config."""
    from data_platform.definitions import defs

    return materialize(
        [*defs.assets, *(defs.asset_checks or [])],
        selection=AssetSelection.assets(MODEL_KEY),
        run_config={"ops": {"ml__delay_model": {"config": config}}},
        instance=instance,
        resources=resources,
        raise_on_error=False,
    )


def model_metadata(result) -> dict:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == MODEL_KEY]
    return {name: value.value for name, value in event.event_specific_data.materialization.metadata.items()}


def check_evaluation(result):
    [evaluation] = [
        e.event_specific_data for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION" and e.event_specific_data.check_name == BASELINE_CHECK
    ]
    return evaluation


def test_model_is_tracked_registered_promoted_only_when_better_and_reproducible(seeded_home, instance, resources, warehouse):
    store = resources["mlflow"]
    features = materialize_days(["features/flight_features"], "2013-01-01", "2013-01-21", instance=instance, resources=resources)
    assert training_set.load_champion_reference(store) is None

    first = train(instance, resources, **WINDOWS, **SMALL)
    assert first.success
    meta = model_metadata(first)
    assert meta["promoted"] is True and meta["model_version"] == "1" and "no champion yet" in meta["decision"]
    assert check_evaluation(first).passed
    assert 0.55 < meta["holdout_roc_auc"] < 0.8 and meta["holdout_log_loss"] < meta["baseline_log_loss"]

    client = store.client()
    run = client.get_run(meta["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    # the materialization links to the run and the registered version in the MLflow UI
    assert meta["mlflow_run"] == f"{mlflow_ui_url()}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    assert meta["mlflow_model_version"] == f"{mlflow_ui_url()}/#/models/{store.model_name}/versions/1"
    assert {"holdout_roc_auc", "holdout_pr_auc", "holdout_log_loss", "holdout_brier", "holdout_positive_rate"} <= set(run.data.metrics)
    assert run.data.params["train_first"] == WINDOWS["train_first"] and run.data.params["max_iter"] == "60"
    tags = run.data.tags
    assert tags["dagster.run_id"] == first.run_id and tags["dagster.code_version"]
    # Feature data versions recorded by MLflow are the ones Dagster recorded for those partitions.
    feature_versions = {
        e.event_specific_data.materialization.partition: e.event_specific_data.materialization.metadata["partition_data_version"].value
        for e in features.get_asset_materialization_events() if e.asset_key == FEATURES_KEY
    }
    recorded = client.download_artifacts(run.info.run_id, "feature_data_versions.json")
    recorded = pd.read_json(recorded, typ="series").to_dict()
    assert {str(day)[:10]: version for day, version in recorded["training"].items()} == {
        day: feature_versions[day] for day in pd.date_range(WINDOWS["train_first"], WINDOWS["train_last"]).strftime("%Y-%m-%d")
    }
    # The training set is an input dataset carrying our digest over all rows.
    datasets = {d.dataset.name: d for d in run.inputs.dataset_inputs}
    assert datasets["training_set"].dataset.digest == tags[training_set.TRAINING_DIGEST_TAG][:32]
    assert {t.key: t.value for t in datasets["training_set"].tags}["mlflow.data.context"] == "training"
    # The registry: version 1 is champion, its logged model has a signature and pinned requirements.
    champion = store.version_by_alias("champion")
    assert str(champion.version) == "1" and champion.run_id == run.info.run_id
    model_info = __import__("mlflow").models.get_model_info(f"models:/{store.model_name}/1")
    assert model_info.signature is not None
    requirements = open(__import__("mlflow").artifacts.download_artifacts(
        f"models:/{store.model_name}/1/requirements.txt")).read()
    assert "scikit-learn==" in requirements and "skops==" in requirements
    reference = training_set.load_champion_reference(store)
    assert len(reference) == meta["training_rows"] and set(reference["day"].dt.strftime("%Y-%m-%d")) == set(
        pd.date_range(WINDOWS["train_first"], WINDOWS["train_last"]).strftime("%Y-%m-%d"))

    # Daily predictions with the champion, then daily performance as numeric metadata.
    scored = materialize_days(["ml/delay_predictions", "ml/model_performance"], *SCORED, instance=instance, resources=resources)
    with warehouse() as conn:
        counts = conn.execute(
            "SELECT count(*), count(DISTINCT model_version), min(model_version) FROM ml.delay_predictions").fetchone()
        feature_rows = conn.execute(
            "SELECT count(*) FROM features.flight_features WHERE day BETWEEN ? AND ?", list(SCORED)).fetchone()[0]
    assert counts == (feature_rows, 1, "1")
    checks = {e.event_specific_data.check_name: e.event_specific_data for e in scored.all_events
              if e.event_type_value == "ASSET_CHECK_EVALUATION"}
    assert checks["matches_predictions_contract"].passed and checks["matches_performance_contract"].passed
    performance = {
        e.event_specific_data.materialization.partition: e.event_specific_data.materialization.metadata
        for e in scored.get_asset_materialization_events() if e.asset_key == AssetKey(["ml", "model_performance"])
    }
    assert sorted(performance) == list(pd.date_range(*SCORED).strftime("%Y-%m-%d"))
    # Each day's figures are those of that day's stored probabilities against that day's labels,
    # computed here with scikit-learn on rows read by this test.
    from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

    with warehouse() as conn:
        joined = conn.execute(
            f"""SELECT p.day, p.probability, f.{LABEL} AS label FROM ml.delay_predictions p
                JOIN features.flight_features f USING (day, carrier, flight, origin) WHERE p.day BETWEEN ? AND ?""",
            list(SCORED)).df()
    for day in ("2013-01-16", "2013-01-19", "2013-01-21"):
        rows = joined[joined["day"].dt.strftime("%Y-%m-%d") == day]
        y, p = rows["label"].astype(int).to_numpy(), rows["probability"].to_numpy()
        assert 0 < y.sum() < len(y), day
        figures = {name: value.value for name, value in performance[day].items()}
        expected = {"roc_auc": roc_auc_score(y, p), "log_loss": log_loss(y, p), "brier": brier_score_loss(y, p),
                    "predicted_positive_rate": p.mean(), "actual_positive_rate": y.mean()}
        assert figures["scored_flights"] == len(rows), day
        for name, value in expected.items():
            assert figures[name] == pytest.approx(value, rel=1e-9), (day, name)

    # Same snapshot, same params: identical metrics, so the new version does not beat the champion.
    second = train(instance, resources, **WINDOWS, **SMALL)
    meta2 = model_metadata(second)
    assert meta2["promoted"] is False and "does not beat" in meta2["decision"]
    assert meta2["holdout_roc_auc"] == meta["holdout_roc_auc"]
    assert meta2["training_set_digest"] == meta["training_set_digest"]
    assert str(store.version_by_alias("champion").version) == "1" and str(store.version_by_alias("challenger").version) == "2"

    # Reproducibility: retrain from the recorded snapshots with the recorded parameters.
    training, holdout = training_set.run_snapshots(store, meta["mlflow_run_id"])
    params = modeling.ModelParams.from_strings(run.data.params)
    model = modeling.fit(training, params)
    again = modeling.metrics(modeling.labels(holdout), modeling.predict(model, holdout))
    for name in ("roc_auc", "pr_auc", "log_loss", "brier"):
        assert again[name] == pytest.approx(run.data.metrics[f"holdout_{name}"], abs=1e-12)

    # An over-fitted model on one day loses to the base rate: the blocking check fails, no promotion.
    overfit = train(instance, resources, train_first="2013-01-14", train_last="2013-01-14",
                    holdout_first="2013-01-16", holdout_last="2013-01-21", max_iter=300, learning_rate=1.0,
                    max_leaf_nodes=255, min_samples_leaf=1, l2_regularization=0.0)
    evaluation = check_evaluation(overfit)
    meta3 = model_metadata(overfit)
    assert not evaluation.passed and "worse than predicting the base rate" in evaluation.description
    assert meta3["promoted"] is False and str(store.version_by_alias("champion").version) == "1"
    assert client.get_run(meta3["mlflow_run_id"]).info.status == "FINISHED"

    # Promote (or roll back) by hand from the command line, then show the registry.
    from data_platform import mlflow_store

    assert mlflow_store.main(["set-champion", "2"]) == 0
    assert str(store.version_by_alias("champion").version) == "2"
    assert mlflow_store.main(["show"]) == 0


def test_model_refuses_windows_without_features_and_ends_no_run_running(seeded_home, instance, resources):
    store = resources["mlflow"]
    materialize_days(["features/flight_features"], "2013-01-01", "2013-01-10", instance=instance, resources=resources)
    result = train(instance, resources, **WINDOWS, **SMALL)
    assert not result.success
    store.setup()
    assert store.client().search_runs([store.client().get_experiment_by_name(store.experiment_name).experiment_id]) == []
    bad = train(instance, resources, train_first="2013-01-05", train_last="2013-01-08",
                holdout_first="2013-01-08", holdout_last="2013-01-09")
    assert not bad.success


def test_run_config_for_a_short_range_skips_the_first_week_and_holds_out_the_end():
    from data_platform.assets.ml import run_config_for_range

    config = run_config_for_range("2013-01-01", "2013-01-31", max_iter=50)["ops"]["ml__delay_model"]["config"]
    DelayModelConfig(**config).windows()  # valid: train before holdout
    assert config["train_first"] == "2013-01-08" and config["holdout_last"] == "2013-01-31"
    assert config["train_last"] < config["holdout_first"] and config["max_iter"] == 50
    with pytest.raises(ValueError):
        run_config_for_range("2013-01-01", "2013-01-05")

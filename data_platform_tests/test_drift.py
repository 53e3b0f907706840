"""Drift monitoring on real data: the checks, their metadata, the plotted record and stored reports.

One landing directory of real days is built once per module: January 1-21 (the 21st with its
temperatures written in degrees Celsius, a plausible unit bug upstream) and July 10. Every test gets
its own copy of the tables built from it.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from dagster import AssetCheckSeverity, AssetKey, AssetSelection, DagsterInstance, materialize

from data_platform import drift, storage, training_set
from data_platform.checks.drift import (
    FEATURE_DRIFT_CHECK,
    FEATURE_DRIFT_RECORD,
    PREDICTION_DRIFT_CHECK,
    PREDICTION_DRIFT_RECORD,
    feature_policy,
    is_retraining_signal,
)
from data_platform.runner import materialize_days, materialize_unpartitioned
from data_platform.settings import PROJECT_ROOT, reports_url
from data_platform.ingest import SourceResource, source_columns
from data_platform.storage.delta import TABLES_DIR
from data_platform_tests.ml_fixtures import copy_tables

SHIFTED_DAY = "2013-01-21"
JANUARY = ("2013-01-01", "2013-01-21")
JULY_DAY = "2013-07-10"
REFERENCE = "2013-01-01..2013-01-14"
# Built without the checks of those assets: the seed is data, each test runs the checks it is about.
PIPELINE = AssetSelection.assets(
    *(AssetKey(key.split("/")) for key in
      ("raw/flights", "raw/weather", "cleaned/flights", "cleaned/weather", "features/flight_features"))
).without_checks()


def write_landing(landing: Path, first: str, last: str) -> None:
    """Real days of the bundled data as landing files with the source's columns."""
    source = SourceResource()
    for table in ("flights", "weather"):
        frame = source.read_daily(table, dt.date.fromisoformat(first), dt.date.fromisoformat(last))
        (landing / table).mkdir(parents=True, exist_ok=True)
        for day, rows in frame.groupby("day"):
            rows = rows.drop(columns=["day"]).rename(columns={"day_of_month": "day"})[source_columns(table)]
            rows.to_csv(landing / table / f"{day.isoformat()}.csv", index=False, na_rep="NA")


def celsius(path: Path) -> None:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    fahrenheit = pd.to_numeric(frame["temp"], errors="coerce")
    frame["temp"] = ((fahrenheit - 32) * 5 / 9).round(2).astype(str).where(fahrenheit.notna(), "NA")
    frame.to_csv(path, index=False)


@pytest.fixture(scope="module")
def drift_seed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(landing directory, tables built from it through features for January 1-21 and July 10)."""
    root = tmp_path_factory.mktemp("drift_seed")
    landing, home = root / "landing", root / "data"
    write_landing(landing, *JANUARY)
    write_landing(landing, JULY_DAY, JULY_DAY)
    celsius(landing / "weather" / f"{SHIFTED_DAY}.csv")
    for name in ("planes", "airports"):  # the reference tables the features read
        table = SourceResource().read_reference(name)[source_columns(name)]
        table.to_csv(landing / f"{name}.csv", index=False, na_rep="NA")
    (home / "dagster").mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster" / "dagster.yaml")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATA_PLATFORM_HOME", str(home))
        patch.setenv("DAGSTER_HOME", str(home / "dagster"))
        patch.setenv("DATA_PLATFORM_LANDING_DIR", str(landing))
        patch.delenv("DATA_PLATFORM_SAMPLE_FRACTION", raising=False)
        patch.delenv(drift.REFERENCE_ENV, raising=False)
        from data_platform.resources import build_resources

        with DagsterInstance.get() as instance:
            resources = build_resources()
            from data_platform.assets.features import REFERENCE_INPUTS

            materialize_unpartitioned(AssetSelection.assets(*REFERENCE_INPUTS).without_checks(),
                                      instance=instance, resources=resources)
            for first, last in (JANUARY, (JULY_DAY, JULY_DAY)):
                materialize_days(PIPELINE, first, last, instance=instance, resources=resources)
    return landing, home / TABLES_DIR


@pytest.fixture
def drift_home(platform_home: Path, drift_seed, monkeypatch: pytest.MonkeyPatch) -> Path:
    landing, tables = drift_seed
    copy_tables(tables, platform_home)
    monkeypatch.setenv("DATA_PLATFORM_LANDING_DIR", str(landing))
    monkeypatch.delenv(drift.REFERENCE_ENV, raising=False)
    monkeypatch.delenv(drift.CONFIG_ENV, raising=False)
    return platform_home


def check_drift(selection, first: str, last: str, instance, resources):
    result = materialize_days(selection, first, last, instance=instance, resources=resources)
    evaluations = [
        e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    return result, evaluations


def only(evaluations, key):
    [evaluation] = [e for e in evaluations if e.asset_check_key == key]
    return evaluation


def values(evaluation) -> dict:
    return {name: value.value for name, value in evaluation.metadata.items()}


def rows(table) -> dict[str, dict]:
    return {next(iter(record.data.values())): record.data for record in table.records}


def test_january_days_pass_and_a_celsius_day_fails_naming_temperature(drift_home, instance, resources, monkeypatch):
    monkeypatch.setenv(drift.REFERENCE_ENV, REFERENCE)
    result, evaluations = check_drift(AssetSelection.checks(FEATURE_DRIFT_CHECK), "2013-01-15", SHIFTED_DAY, instance, resources)

    evaluation = only(evaluations, FEATURE_DRIFT_CHECK)
    meta = values(evaluation)
    per_partition = rows(meta["per_partition"])
    assert not evaluation.passed and evaluation.severity == AssetCheckSeverity.WARN
    assert not is_retraining_signal(evaluation)
    # One result for the range; every partition's outcome is in its metadata.
    assert sorted(per_partition) == [f"2013-01-{d}" for d in range(15, 22)]
    # A January day against the January reference does not fail...
    assert per_partition["2013-01-15"]["severity"] == "PASS" and per_partition["2013-01-15"]["drifted_columns"] == 0
    # ...and temperature drifts only on the day it arrived in Celsius, which the result names.
    temperature_days = [day for day, row in per_partition.items() if "wx_temp" in row["drifted"].split(", ")]
    assert temperature_days == [SHIFTED_DAY]
    assert f"{SHIFTED_DAY}: WARN" in evaluation.description and "wx_temp" in evaluation.description
    assert meta["reference"] == f"partitions {REFERENCE}" and meta["reference_sample_rows"] <= meta["reference_rows"]

    # The drift share is float metadata of a materialization per partition (what the UI plots).
    records = instance.fetch_materializations(FEATURE_DRIFT_RECORD, limit=50).records
    plotted = {r.partition_key: r.asset_materialization.metadata for r in records}
    assert sorted(plotted) == sorted(per_partition)
    shifted = plotted[SHIFTED_DAY]
    assert isinstance(shifted["drift_share"].value, float)
    assert shifted["drift_share"].value == pytest.approx(per_partition[SHIFTED_DAY]["drift_share"])
    assert shifted["drifted_columns"].value == per_partition[SHIFTED_DAY]["drifted_columns"] >= 1
    assert shifted["severity"].value == "WARN"

    # A snapshot and an HTML report for every partition, linked as a URL of the report server.
    store = drift.ReportStore()
    reports = f"{reports_url()}/drift/feature_drift/"
    for day, row in per_partition.items():
        snapshot = store.snapshot_path("feature_drift", dt.date.fromisoformat(day))
        assert snapshot.exists() and snapshot.stat().st_size < 500_000
        assert store.html_path("feature_drift", dt.date.fromisoformat(day)).exists()
        assert row["report"] == f"{reports}{day}.html"
        assert plotted[day]["report_url"].value == f"{reports}{day}.html"
    assert Path(shifted["report"].value) == store.html_path("feature_drift", dt.date.fromisoformat(SHIFTED_DAY))
    assert meta["report_url"] == f"{reports}{meta['worst_partition']}.html"


def test_a_stored_snapshot_renders_on_request(drift_home, instance, resources, monkeypatch):
    monkeypatch.setenv(drift.REFERENCE_ENV, REFERENCE)
    check_drift(AssetSelection.checks(FEATURE_DRIFT_CHECK), "2013-01-15", "2013-01-16", instance, resources)
    store = drift.ReportStore()
    snapshot = store.snapshot_path("feature_drift", dt.date(2013, 1, 15))
    html = store.html_path("feature_drift", dt.date(2013, 1, 15))
    assert snapshot.exists() and html.exists()
    html.unlink()  # rendered again from the stored snapshot

    from data_platform.__main__ import main

    assert main(["drift-report", "2013-01-15"]) == 0
    page = html.read_text()
    # The stored snapshot carries every scored column's result, with its test and widgets.
    stored = json.loads(snapshot.read_text())
    params = [r["metric_value_location"]["metric"]["params"] for r in stored["metric_results"].values()]
    scored = {p["column"] for p in params if p["type"].endswith(":ColumnDriftScore")}
    assert {"wx_temp", "carrier", "distance"} <= scored <= {c.column for c in feature_policy().monitored}
    assert any(p["type"].endswith(":DriftedColumnsShare") for p in params)
    assert "wx_temp" in page and "drawDashboard" in page and len(stored["widgets"]) > 10
    # Evidently's 4 MB script bundle is shared by every page, not inlined.
    [script] = [line.split('"')[1] for line in page.splitlines() if "<script src=" in line]
    assert (html.parent / script).resolve().exists() and len(page) < 1_000_000
    assert main(["drift-report", "2012-01-01"]) == 1


def test_july_against_january_drifts_on_temperature_not_carrier_and_signals_retraining(
    drift_home, instance, resources, monkeypatch
):
    monkeypatch.setenv(drift.REFERENCE_ENV, REFERENCE)
    _, evaluations = check_drift(AssetSelection.checks(FEATURE_DRIFT_CHECK), JULY_DAY, JULY_DAY, instance, resources)
    evaluation = only(evaluations, FEATURE_DRIFT_CHECK)
    meta = values(evaluation)
    columns = rows(meta["columns"])

    assert columns["wx_temp"]["drifted"] and columns["wx_temp"]["score"] > 2 * columns["wx_temp"]["threshold"]
    assert not columns["carrier"]["drifted"] and columns["carrier"]["method"] == "jensenshannon"
    assert columns["day_of_year"]["method"] == "-" and "constant within a daily partition" in columns["day_of_year"]["note"]
    assert meta["drift_share"] == pytest.approx(meta["drifted_columns"] / meta["scored_columns"], abs=1e-4)
    # Seven of 24 scored columns drift: past the policy's error share, so ERROR, the retraining signal.
    assert meta["drift_share"] >= feature_policy().error_share
    assert evaluation.severity == AssetCheckSeverity.ERROR and is_retraining_signal(evaluation)

    # The error share is configurable: raised above the observed share, the same day is a WARN.
    settings = drift_home / "drift.json"
    settings.write_text(json.dumps({"feature_drift": {"error_share": 0.9, "columns": {"carrier": {"threshold": 0.05}}}}))
    monkeypatch.setenv(drift.CONFIG_ENV, str(settings))
    _, evaluations = check_drift(AssetSelection.checks(FEATURE_DRIFT_CHECK), JULY_DAY, JULY_DAY, instance, resources)
    evaluation = only(evaluations, FEATURE_DRIFT_CHECK)
    columns = rows(values(evaluation)["columns"])
    assert evaluation.severity == AssetCheckSeverity.WARN and not is_retraining_signal(evaluation)
    assert columns["carrier"]["threshold"] == 0.05 and columns["carrier"]["drifted"]  # a fixed threshold, per column


def test_policies_take_effect_sizes_only():
    policy = feature_policy()
    assert {c.column for c in policy.columns} >= {"wx_temp", "carrier", "distance", "plane_engine"}
    assert all(c.method in drift.METHODS for c in policy.monitored)
    with pytest.raises(ValueError, match="not an effect size"):
        policy.with_overrides({"columns": {"wx_temp": {"method": "ks"}}})  # Evidently's KS p-value
    with pytest.raises(ValueError, match="unknown column"):
        policy.with_overrides({"columns": {"no_such_feature": {"threshold": 1.0}}})
    with pytest.raises(ValueError, match="does not apply"):
        policy.with_overrides({"columns": {"carrier": {"method": "wasserstein"}}})
    assert policy.with_overrides({"columns": {"wx_temp": {"method": "ks_statistic", "threshold": 0.5}}}).column("wx_temp").threshold == 0.5


def psi(reference, current) -> float:
    """Population stability index the way Evidently bins a numerical column with more than 20 values:
    Sturges bins over both samples, empty bins filled with a tiny share."""
    import numpy as np

    edges = np.histogram_bin_edges(np.concatenate([reference, current]), bins="sturges")
    shares = []
    for values in (reference, current):
        share = np.histogram(values, edges)[0] / len(values)
        smallest = share[share > 0].min()
        share[share == 0] = smallest / 10**6 if smallest <= 0.0001 else 0.0001
        shares.append(share)
    expected, actual = shares
    return float(np.sum((expected - actual) * np.log(expected / actual)))


def test_the_champions_training_set_is_the_reference_of_features_and_scores(drift_home, instance, resources, monkeypatch):
    from data_platform.assets.ml import MODEL_KEY, PREDICTIONS_KEY
    from data_platform.definitions import defs

    window = dict(train_first="2013-01-01", train_last="2013-01-14", holdout_first="2013-01-15", holdout_last="2013-01-18")
    # The whole training set as the score reference (no sample), so this test can recompute it.
    settings = drift_home / "drift.json"
    settings.write_text(json.dumps({"prediction_drift": {"reference_rows": 1_000_000}}))
    monkeypatch.setenv(drift.CONFIG_ENV, str(settings))
    trained = materialize(
        [*defs.assets, *(defs.asset_checks or [])],
        selection=AssetSelection.assets(MODEL_KEY),
        run_config={"ops": {"ml__delay_model": {"config": {**window, "max_iter": 40, "min_samples_leaf": 40}}}},
        instance=instance, resources=resources,
    )
    assert trained.success
    selection = AssetSelection.assets(PREDICTIONS_KEY).without_checks() | AssetSelection.checks(
        FEATURE_DRIFT_CHECK, PREDICTION_DRIFT_CHECK
    )
    _, evaluations = check_drift(selection, "2013-01-15", SHIFTED_DAY, instance, resources)

    features = values(only(evaluations, FEATURE_DRIFT_CHECK))
    assert "v1 (champion)" in features["reference"]
    assert "wx_temp" in rows(features["per_partition"])[SHIFTED_DAY]["drifted"]

    predictions = only(evaluations, PREDICTION_DRIFT_CHECK)
    scores = values(predictions)
    assert "v1 (champion) scores of its training set" in scores["reference"]
    assert scores["reference_rows"] == features["reference_rows"] and scores["scored_by_model_versions"] == "1"
    [probability] = rows(scores["columns"]).values()
    assert probability["column"] == "probability" and probability["method"] == "psi" and probability["score"] >= 0
    plotted = {r.partition_key: r.asset_materialization.metadata
               for r in instance.fetch_materializations(PREDICTION_DRIFT_RECORD, limit=50).records}
    assert sorted(plotted) == sorted(rows(scores["per_partition"]))
    assert drift.ReportStore().snapshot_path("prediction_drift", dt.date.fromisoformat(SHIFTED_DAY)).exists()

    # Recomputed here: the champion's scores of its training rows against each day's stored
    # probabilities; the threshold from leave-one-day-out scores of the training days (at least 0.1);
    # WARN from the threshold, ERROR from twice it.
    from data_platform import modeling

    store = resources["mlflow"]
    model, _ = store.load_model()
    training = training_set.load_champion_reference(store)
    reference = pd.DataFrame({"day": training["day"].dt.date, "score": modeling.predict(model, training)})
    assert scores["reference_rows"] == len(reference)
    leave_one_out = [psi(reference[reference["day"] != day]["score"].to_numpy(), group["score"].to_numpy())
                     for day, group in reference.groupby("day")]
    threshold = max(0.1, max(leave_one_out))
    assert probability["threshold"] == pytest.approx(threshold, abs=1e-4)
    with storage.connection() as conn:
        stored = conn.execute("SELECT day, probability FROM ml.delay_predictions").df()
    expected = {}
    for day, group in stored.groupby(stored["day"].dt.strftime("%Y-%m-%d")):
        score = psi(reference["score"].to_numpy(), group["probability"].to_numpy())
        expected[day] = "PASS" if score < threshold else "ERROR" if score >= 2 * threshold else "WARN"
        assert plotted[day]["score"].value == pytest.approx(score, abs=1e-4), day
        assert plotted[day]["severity"].value == expected[day], day
    assert sorted(expected) == sorted(plotted)
    assert predictions.passed == (set(expected.values()) == {"PASS"})
    if not predictions.passed:
        worst = AssetCheckSeverity.ERROR if "ERROR" in expected.values() else AssetCheckSeverity.WARN
        assert predictions.severity == worst

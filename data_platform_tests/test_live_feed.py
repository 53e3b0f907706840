"""A live feed runs the whole ML graph to yesterday: the bundled flights and weather, moved to the last 60
days, land as daily files; contracts of the user's own (DATA_PLATFORM_CONTRACTS_DIRS) declare them live.
Real runs give features, a trained champion, predictions and performance up to yesterday, the online
store is loaded, and the real service scores yesterday's flights as the batch did, not stale."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import time

import pytest
from dagster import AssetKey, DagsterInstance

from data_platform import settings, storage
from data_platform.features import FEATURES
from data_platform.datasets import contract_files
from data_platform.settings import CONTRACTS_ENV, LANDING_ENV, PROJECT_ROOT
from data_platform_tests.live_feed import NEW_YORK, write_feed
from data_platform_tests.serving_fixtures import mismatches, offline_rows, request_of, start_service

DAYS = 60
HOLDOUT_DAYS = 14  # the model's relative windows (live_feed.run_graph): these days are scored and evaluated


@pytest.mark.real_process
def test_a_live_feed_runs_features_model_predictions_performance_and_serving_to_yesterday(tmp_path, platform_home):
    started = time.monotonic()
    yesterday = dt.datetime.now(NEW_YORK).date() - dt.timedelta(days=1)
    feed = write_feed(tmp_path, yesterday, DAYS)
    holdout_first = yesterday - dt.timedelta(days=HOLDOUT_DAYS - 1)
    env = {**os.environ, LANDING_ENV: str(feed.landing), CONTRACTS_ENV: str(feed.contracts)}
    graph = subprocess.run([sys.executable, "-m", "data_platform_tests.live_feed", str(feed.first), str(yesterday),
                            str(holdout_first)], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert graph.returncode == 0, graph.stderr[-5000:]

    with DagsterInstance.get() as instance:
        days = {key: instance.get_materialized_partitions(AssetKey(key.split("/")))
                for key in ("features/flight_features", "ml/delay_predictions", "ml/model_performance")}
        model = instance.get_latest_materialization_event(AssetKey(["ml", "delay_model"]))
    every_day = {str(feed.first + dt.timedelta(days=n)) for n in range(DAYS)}
    assert days["features/flight_features"] == every_day
    assert days["ml/delay_predictions"] == days["ml/model_performance"] == {d for d in every_day if d >= str(holdout_first)}
    meta = {name: value.value for name, value in model.asset_materialization.metadata.items()}
    # Windows relative to the newest features: 45 training days, a day's gap, 14 held out ending yesterday.
    train_first = holdout_first - dt.timedelta(days=46)
    assert meta["windows"] == (f"train {train_first}..{holdout_first - dt.timedelta(days=2)}, "
                               f"holdout {holdout_first}..{yesterday}")
    assert meta["promoted"] is True and meta["model_version"] == "1"

    with storage.connection() as conn:
        evaluated = dict(conn.execute("SELECT day, roc_auc FROM ml.model_performance").fetchall())
    # A single day's ROC AUC can fall below 0.5 (yesterday replays a day of Christmas week 2013); the fortnight's cannot.
    assert yesterday in evaluated and sum(evaluated.values()) / len(evaluated) > 0.55, evaluated

    rows = offline_rows(platform_home, str(yesterday), str(yesterday))
    assert len(rows) > 300 and all(row["model_version"] == "1" for row in rows)
    complete = next((row for row in rows if all(row[name] is not None for name in FEATURES)), None)
    assert complete is not None, "no flight of yesterday has every feature"
    service = start_service(platform_home, **{CONTRACTS_ENV: str(feed.contracts)})
    try:
        status, health = service.call("GET", "/health")
        assert status == 200 and health["store_newest_day"] == str(yesterday), health
        assert 0 <= health["store_staleness_seconds"] < 24 * 3600, health  # current as of the start of today
        status, answer = service.call("POST", "/predict", request_of(complete))
        assert status == 200, answer
        assert not answer["stale"] and answer["flags"] == [] and not mismatches(answer, complete)
        assert all(answer["features"][name] is not None for name in FEATURES), answer["features"]
        answers = []
        for start in range(0, len(rows), 200):
            status, body = service.call("POST", "/predict/batch", {"flights": [request_of(r) for r in rows[start:start + 200]]})
            assert status == 200, body
            answers.extend(body["predictions"])
    finally:
        service.stop()
    wrong = {f"{r['carrier']}{r['flight']} {r['origin']}": m for r, a in zip(rows, answers) if (m := mismatches(a, r))}
    assert not wrong, f"{len(wrong)} of {len(rows)} flights of {yesterday} differ: {dict(list(wrong.items())[:5])}"
    assert not any(a["stale"] for a in answers)
    assert sum(a["features"]["weather_observed_at"] is not None for a in answers) > 0.9 * len(answers)
    print(f"live feed {feed.first}..{yesterday}: {len(rows)} flights of yesterday served in "
          f"{time.monotonic() - started:.0f} s in all")


def test_contracts_folders_replace_the_repositorys_and_a_missing_one_is_named(tmp_path, monkeypatch):
    mine, more, missing = tmp_path / "mine", tmp_path / "more", tmp_path / "missing"
    mine.mkdir()
    more.mkdir()
    shutil.copy(settings.REPOSITORY_DATASETS / "airlines.odcs.yaml", mine)
    monkeypatch.setenv(CONTRACTS_ENV, str(mine))
    monkeypatch.setenv(settings.DATASETS_ENV, str(more))
    assert settings.datasets_dirs() == [mine.resolve(), more.resolve()]
    assert contract_files() == [mine.resolve() / "airlines.odcs.yaml"]
    assert settings.user_datasets_dir() == more.resolve()
    monkeypatch.setenv(CONTRACTS_ENV, f"{mine}{os.pathsep}{missing}")
    with pytest.raises(ValueError, match=f"{CONTRACTS_ENV}=.*not a folder: {missing}"):
        settings.datasets_dirs()


def test_the_components_contracts_folders_are_read_again_when_its_file_changes(tmp_path, monkeypatch):
    instance = tmp_path / "defs.yaml"
    monkeypatch.setattr(settings, "DATASETS_COMPONENT", instance)
    monkeypatch.delenv(CONTRACTS_ENV, raising=False)
    monkeypatch.delenv(settings.DATASETS_ENV, raising=False)
    instance.write_text("type: data_platform.components.datasets.DatasetsComponent\n"
                        "attributes:\n  contracts_dirs: [datasets]\n")
    assert settings.contracts_dirs() == ["datasets"]
    instance.write_text("type: data_platform.components.datasets.DatasetsComponent\n"
                        "attributes:\n  contracts_dirs: [mine, more]\n")
    assert settings.contracts_dirs() == ["mine", "more"]
    assert settings.datasets_dirs() == [PROJECT_ROOT / "mine", PROJECT_ROOT / "more"]
    instance.write_text("type: data_platform.components.datasets.DatasetsComponent\n"
                        "attributes:\n  contracts_dirs: mine\n")
    with pytest.raises(ValueError, match=f"{instance}: attributes.contracts_dirs must be a list"):
        settings.contracts_dirs()

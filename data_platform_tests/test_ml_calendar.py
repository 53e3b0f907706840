"""The ML calendar comes from its inputs: partitions from the flights contract, training windows relative
to the newest stored features, and a model run on any range of features ends green."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from dagster import AssetKey, AssetSelection, materialize

from data_platform.assets import features as F
from data_platform.assets.ml import MODEL_KEY, MODEL_OP, DelayModelConfig
from data_platform.datasets import dataset
from data_platform.definitions import defs
from data_platform.runner import materialize_days
from data_platform_tests.ml_fixtures import seeded_home, seeded_warehouse  # noqa: F401  (fixtures)

SMALL = {"max_iter": 60, "min_samples_leaf": 40}


def test_the_ml_partitions_are_those_of_the_flights_contract():
    flights = dataset("flights").partitioning
    keys = F.PARTITIONS.get_partition_keys()
    assert (keys[0], keys[-1]) == (flights.start.isoformat(), flights.end.isoformat())
    daily = [a for a in defs.assets if getattr(a, "partitions_def", None) is not None
             and a.key.path[0] in ("features", "ml", "monitoring")]
    assert daily and all(a.partitions_def is F.PARTITIONS for a in daily)  # one object: identity mappings
    cleaned = defs.get_assets_def(["cleaned", "flights"])
    assert cleaned.partitions_def is F.PARTITIONS


def test_default_windows_follow_the_newest_features_and_give_the_bundled_years_split():
    year = list(pd.date_range("2013-01-01", "2013-12-31").date)
    windows, _ = DelayModelConfig().relative_windows(year)
    assert windows == (dt.date(2013, 1, 1), dt.date(2013, 9, 30), dt.date(2013, 11, 1), dt.date(2013, 12, 31))
    # a live feed: the same lengths end with its newest day, clipped to the oldest stored day
    recent = list(pd.date_range("2026-06-01", "2026-12-05").date)
    windows, _ = DelayModelConfig().relative_windows(recent)
    assert windows == (dt.date(2026, 6, 1), dt.date(2026, 9, 4), dt.date(2026, 10, 6), dt.date(2026, 12, 5))


def run_model(instance, resources, **config):
    return materialize([*defs.assets, *(defs.asset_checks or [])], selection=AssetSelection.assets(MODEL_KEY),
                       run_config={"ops": {MODEL_OP: {"config": config}}}, instance=instance, resources=resources,
                       raise_on_error=False)


def metadata(result) -> dict:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == MODEL_KEY]
    return {name: value.value for name, value in event.event_specific_data.materialization.metadata.items()}


def test_windows_relative_to_the_newest_features_train_and_too_few_days_say_why_not_without_failing(
        seeded_home, instance, resources):
    materialize_days(["features/flight_features"], "2013-01-01", "2013-01-05", instance=instance, resources=resources)
    few = run_model(instance, resources, **SMALL)
    assert few.success
    meta = metadata(few)
    assert meta["trained"] is False and "too few to train on" in meta["decision"] and meta["champion_version"] == "none"
    assert not [e for e in few.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    # without a champion, the days are not scored and not evaluated, and say so: no failed run
    for key, flag in (("ml/delay_predictions", "scored"), ("ml/model_performance", "evaluated")):
        result = materialize_days(AssetSelection.assets(AssetKey(key.split("/"))).without_checks(),
                                  "2013-01-05", "2013-01-05", instance=instance, resources=resources)
        [event] = result.get_asset_materialization_events()
        assert event.event_specific_data.materialization.metadata[flag].value is False, key

    materialize_days(["features/flight_features"], "2013-01-06", "2013-01-21", instance=instance, resources=resources)
    trained = run_model(instance, resources, holdout_days=5, gap_days=1, train_days=10, min_train_days=7, **SMALL)
    assert trained.success
    meta = metadata(trained)
    assert meta["windows"] == "train 2013-01-06..2013-01-15, holdout 2013-01-17..2013-01-21"
    assert meta["model_version"] == "1" and meta["promoted"] is True

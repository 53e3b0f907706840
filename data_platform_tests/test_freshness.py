"""Freshness: policies on every asset, partition-aware checks against the source's newest partition."""

import datetime as dt
import os
from pathlib import Path

import pytest
from dagster import AssetCheckSeverity, AssetKey, AssetSelection, DefaultSensorStatus, build_sensor_context, materialize

from data_platform.automation import specs_of
from data_platform.checks import freshness
from data_platform.definitions import defs
from data_platform.resources import build_resources
from data_platform.runner import materialize_days
from data_platform.ingest import SourceResource
from data_platform_tests.test_foundation import write_landing_day, write_landing_days

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
RAW_FLIGHTS = AssetKey(["raw", "flights"])
CLEANED_FLIGHTS = AssetKey(["cleaned", "flights"])


def mark(day: str, hours_ago: float, republishable: bool = True) -> freshness.HighWater:
    return freshness.HighWater(
        dt.date.fromisoformat(day), NOW - dt.timedelta(hours=hours_ago), "file:///landing/flights/x.csv", republishable,
        start=dt.date(2013, 1, 1),
    )


def test_a_missing_newest_partition_is_late_by_the_time_past_its_layer_deadline():
    verdict = freshness.judge(CLEANED_FLIGHTS, mark("2013-03-05", hours_ago=5), {"2013-03-01", "2013-03-02"}, None, NOW)

    assert not verdict.passed
    assert verdict.metadata["expected_partition"] == "2013-03-05"
    assert verdict.metadata["latest_materialized_partition"] == "2013-03-02"
    assert verdict.metadata["partitions_behind"] == 3
    # cleaned is allowed 2 h after the file appeared 5 h ago: 3 h late
    assert verdict.metadata["overdue_seconds"] == pytest.approx(3 * 3600)
    assert verdict.metadata["deadline"].value == pytest.approx((NOW - dt.timedelta(hours=3)).timestamp())
    assert "2.0 h" in verdict.metadata["deadline_rule"] and "Late by 3.0 h" in verdict.description


def test_a_partition_not_yet_due_passes_until_its_deadline():
    verdict = freshness.judge(RAW_FLIGHTS, mark("2013-03-05", hours_ago=0.5), {"2013-03-04"}, None, NOW)

    assert verdict.passed and verdict.description.startswith("Not due yet")
    assert verdict.metadata[freshness.FRESH_UNTIL].value == pytest.approx((NOW + dt.timedelta(minutes=30)).timestamp())


def test_the_newest_partition_materialized_after_it_arrived_is_fresh():
    at = NOW - dt.timedelta(hours=1)
    verdict = freshness.judge(RAW_FLIGHTS, mark("2013-03-05", hours_ago=8), {"2013-03-04", "2013-03-05"}, at, NOW)

    assert verdict.passed and verdict.metadata["overdue_seconds"] == 0
    assert verdict.metadata["partitions_behind"] == 0


def test_a_landing_file_republished_after_ingestion_makes_the_partition_late_again():
    ingested = NOW - dt.timedelta(hours=10)
    late = freshness.judge(RAW_FLIGHTS, mark("2013-03-05", hours_ago=4), {"2013-03-05"}, ingested, NOW)
    bundled = freshness.judge(RAW_FLIGHTS, mark("2013-03-05", 4, republishable=False), {"2013-03-05"}, ingested, NOW)

    assert not late.passed and "re-published" in late.description
    assert late.metadata["overdue_seconds"] == pytest.approx(3 * 3600)
    assert bundled.passed  # a pinned package's file time is its install time, not a new version


def test_every_asset_has_a_freshness_policy_and_every_daily_asset_a_partition_check():
    specs = [spec for asset in defs.assets for spec in specs_of(asset)]
    checked = {key.asset_key for checks in defs.asset_checks for key in checks.check_keys if key.name == freshness.CHECK_NAME}

    assert specs and all(spec.freshness_policy is not None for spec in specs)
    assert checked == {spec.key for spec in specs if freshness.is_daily(spec)}
    sensor = defs.get_repository_def().get_sensor_def(freshness.SENSOR_NAME)
    assert sensor.default_status == DefaultSensorStatus.RUNNING


def test_policy_windows_follow_the_layer_for_a_live_feed_and_the_replay_otherwise():
    specs = {spec.key: spec for asset in defs.assets for spec in specs_of(asset)}
    live = {key: freshness.freshness_policy(spec, live_source=True) for key, spec in specs.items()}
    replay = freshness.freshness_policy(specs[RAW_FLIGHTS], live_source=False)

    assert live[RAW_FLIGHTS].fail_window.to_timedelta() == dt.timedelta(hours=26)
    assert live[CLEANED_FLIGHTS].fail_window.to_timedelta() > live[RAW_FLIGHTS].fail_window.to_timedelta()
    assert live[AssetKey(["raw", "planes"])].fail_window.to_timedelta() == dt.timedelta(days=8)
    assert replay.fail_window.to_timedelta() == dt.timedelta(days=30)
    assert replay.warn_window.to_timedelta() == dt.timedelta(days=7)


def test_the_high_water_mark_is_the_newest_valid_landing_file(tmp_path: Path):
    landing = tmp_path / "landing"
    write_landing_days(landing, "flights", "2013-01-02", "2013-01-03")
    (landing / "flights" / "2014-06-01.csv").write_text("outside the partition range")
    (landing / "flights" / "notes.csv").write_text("not a date")
    os.utime(landing / "flights" / "2013-01-03.csv", (NOW.timestamp(), NOW.timestamp()))

    found = freshness.high_water(SourceResource(landing_dir=str(landing)), "flights")

    assert found.day == dt.date(2013, 1, 3) and found.available_at == NOW and found.republishable
    assert freshness.high_water(SourceResource(landing_dir=str(landing)), "weather") is None
    assert freshness.high_water(SourceResource(), "flights").day == dt.date(2013, 12, 31)


def _evaluations(result, check_name: str) -> dict:
    found = {}
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            if evaluation.check_name == check_name:
                found[evaluation.asset_key] = evaluation
    return found


def test_the_check_in_real_runs_fails_while_the_newest_landing_day_is_missing_then_passes(
    tmp_path, monkeypatch, instance
):
    landing = tmp_path / "landing"
    for table in ("flights", "weather"):
        write_landing_days(landing, table, "2013-01-01", "2013-01-03")
    three_hours_ago = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=3)).timestamp()
    for table in ("flights", "weather"):
        os.utime(landing / table / "2013-01-03.csv", (three_hours_ago, three_hours_ago))
    monkeypatch.setenv("DATA_PLATFORM_LANDING_DIR", str(landing))
    selection = ["raw/flights", "raw/weather", "cleaned/flights", "cleaned/weather"]

    behind = _evaluations(
        materialize_days(selection, "2013-01-01", "2013-01-02", instance=instance, resources=build_resources()),
        freshness.CHECK_NAME,
    )
    raw_late, cleaned_late = behind[RAW_FLIGHTS], behind[CLEANED_FLIGHTS]
    assert not raw_late.passed and raw_late.severity == AssetCheckSeverity.WARN
    assert raw_late.metadata["expected_partition"].value == "2013-01-03"
    assert raw_late.metadata["latest_materialized_partition"].value == "2013-01-02"
    assert raw_late.metadata["overdue_hours"].value == pytest.approx(2.0, abs=0.05)  # 3 h ago + 1 h allowed
    assert cleaned_late.metadata["overdue_hours"].value == pytest.approx(1.0, abs=0.05)  # + 2 h allowed

    caught_up = _evaluations(
        materialize_days(selection, "2013-01-03", instance=instance, resources=build_resources()), freshness.CHECK_NAME
    )
    assert set(caught_up) == {AssetKey(key.split("/")) for key in selection}
    assert all(evaluation.passed for evaluation in caught_up.values())
    assert caught_up[RAW_FLIGHTS].metadata["partitions_behind"].value == 0


# How long after the source made a partition available each layer may take (README, *Freshness*).
ALLOWED_HOURS = {"raw": 1, "cleaned": 2, "features": 3, "ml": 4, "monitoring": 4}


def test_dagsters_freshness_sensor_evaluates_our_checks_and_then_waits(tmp_path, monkeypatch, instance):
    # A landing day that arrived 2.5 h ago: raw and cleaned are past their deadlines, the layers
    # computed from them are not due yet.
    landing = tmp_path / "landing"
    arrived = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2.5)
    for table in ("flights", "weather"):
        write_landing_day(landing, table, "2013-01-01")
        os.utime(landing / table / "2013-01-01.csv", (arrived.timestamp(), arrived.timestamp()))
    monkeypatch.setenv("DATA_PLATFORM_LANDING_DIR", str(landing))
    resources = build_resources()
    sensor = defs.get_repository_def().get_sensor_def(freshness.SENSOR_NAME)
    daily_checks = {key for checks in defs.asset_checks for key in checks.check_keys if key.name == freshness.CHECK_NAME}
    assert {RAW_FLIGHTS, CLEANED_FLIGHTS, AssetKey(["ml", "model_performance"])} <= {k.asset_key for k in daily_checks}

    first = sensor.evaluate_tick(build_sensor_context(instance=instance, definitions=defs))
    assert len(first.run_requests) == 1
    assert set(first.run_requests[0].asset_check_keys) == daily_checks  # never evaluated: all of them

    # evaluate them as the sensor's run would, after raw/flights ingested the day
    materialize_days(AssetSelection.assets(RAW_FLIGHTS).without_checks(), "2013-01-01", instance=instance,
                     resources=resources)
    checked_at = dt.datetime.now(dt.timezone.utc)
    results = _evaluations(
        materialize([*defs.assets, *defs.asset_checks], selection=AssetSelection.checks(*daily_checks),
                    instance=instance, resources=resources),
        freshness.CHECK_NAME,
    )
    assert set(results) == {key.asset_key for key in daily_checks}
    for key, evaluation in results.items():
        deadline = arrived + dt.timedelta(hours=ALLOWED_HOURS[key.path[0]])
        meta = {name: value.value for name, value in evaluation.metadata.items()}
        assert meta["expected_partition"] == "2013-01-01", key
        if key == RAW_FLIGHTS:
            assert evaluation.passed and evaluation.description.startswith("Fresh"), evaluation.description
            assert meta[freshness.FRESH_UNTIL] > checked_at.timestamp() + 3000  # checked again in an hour
        elif deadline < checked_at:
            assert not evaluation.passed and evaluation.severity == AssetCheckSeverity.WARN, key
            late = (checked_at - deadline).total_seconds() / 3600
            assert meta["overdue_hours"] == pytest.approx(late, abs=0.05), key
        else:
            assert evaluation.passed and evaluation.description.startswith("Not due yet"), key
            assert meta[freshness.FRESH_UNTIL] == pytest.approx(deadline.timestamp(), abs=1), key
    verdicts = {key.path[0]: evaluation.passed for key, evaluation in results.items() if key != RAW_FLIGHTS}
    assert verdicts["raw"] is False and verdicts["cleaned"] is False and verdicts["features"] is True

    # passed checks wait for their fresh-until time, failed ones for a new materialization: nothing to run
    second = sensor.evaluate_tick(build_sensor_context(instance=instance, definitions=defs, cursor=first.cursor))
    assert not second.run_requests

    # a late asset materialized again: its check, and only its check, is evaluated again
    raw_weather = AssetKey(["raw", "weather"])
    materialize_days(AssetSelection.assets(raw_weather).without_checks(), "2013-01-01", instance=instance,
                     resources=resources)
    third = sensor.evaluate_tick(build_sensor_context(instance=instance, definitions=defs, cursor=second.cursor))
    [request] = third.run_requests
    assert [key.asset_key for key in request.asset_check_keys] == [raw_weather]

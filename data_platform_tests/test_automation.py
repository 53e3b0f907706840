"""Automation: conditions that follow daily upstreams, the ingest schedule, retrain on drift, run failures."""

import datetime as dt
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pandas as pd
import pytest
from dagster import (
    AssetCheckEvaluation,
    AssetCheckKey,
    AssetCheckSeverity,
    AssetKey,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    build_run_status_sensor_context,
    build_schedule_context,
    build_sensor_context,
    evaluate_automation_conditions,
    materialize,
)

from data_platform import automation
from data_platform.definitions import defs
from data_platform.resources import build_resources
from data_platform.runner import materialize_days, materialize_unpartitioned
from data_platform.ingest import SourceResource
from data_platform_tests.quality_helpers import REFERENCES
from data_platform_tests.test_foundation import write_landing_day

RAW = [AssetKey(["raw", "flights"]), AssetKey(["raw", "weather"])]
CLEANED = [AssetKey(["cleaned", "flights"]), AssetKey(["cleaned", "weather"])]
DRIFT = AssetCheckKey(AssetKey(["features", "flight_features"]), "feature_drift")


def requested(result) -> dict[str, set[str]]:
    found = {}
    for request in result.results:
        if request.true_subset.size:
            keys = request.true_subset.expensively_compute_partition_keys() or {None}
            found[request.key.to_user_string()] = set(keys)
    return found


def test_sensors_and_schedule_run_by_default():
    repository = defs.get_repository_def()
    for name in (automation.AUTOMATION_SENSOR, automation.FAILURE_SENSOR):
        assert repository.get_sensor_def(name).default_status == DefaultSensorStatus.RUNNING
    assert repository.get_schedule_def(automation.INGEST_SCHEDULE).default_status == DefaultScheduleStatus.RUNNING


def test_downstream_daily_assets_follow_a_reingested_day_once_and_only_that_day(instance, resources):
    # cleaned/flights waits for the reference datasets its contract references
    assert materialize_unpartitioned(REFERENCES, instance=instance, resources=resources).success
    first = evaluate_automation_conditions(defs, instance)
    assert first.total_requested == 0  # a fresh instance does not start a year of work on its own

    materialize_days(["raw/flights", "raw/weather"], "2013-03-05", instance=instance, resources=resources)
    second = evaluate_automation_conditions(defs, instance, cursor=first.cursor)
    # features and the online store depend on their own day (their history is read, not a partition
    # dependency), so they follow in the same evaluation; predictions wait for a model
    day = {"2013-03-05"}
    assert requested(second) == {"cleaned/flights": day, "cleaned/weather": day, "features/flight_features": day,
                                 "ml/online_features": day}

    # a run that materializes raw and cleaned together leaves only that day's features (and online
    # store) to follow; 03-05 was requested once already and is not requested again
    materialize_days(
        ["raw/flights", "raw/weather", "cleaned/flights", "cleaned/weather"], "2013-03-06",
        instance=instance, resources=resources,
    )
    third = evaluate_automation_conditions(defs, instance, cursor=second.cursor)
    assert requested(third) == {"features/flight_features": {"2013-03-06"}, "ml/online_features": {"2013-03-06"}}


def test_an_unpartitioned_upstream_update_does_not_request_a_year_of_history(instance, resources):
    assert materialize_unpartitioned(REFERENCES, instance=instance, resources=resources).success
    days = ["raw/flights", "raw/weather", "cleaned/flights", "cleaned/weather"]
    materialize_days(days, "2013-03-01", "2013-03-03", instance=instance, resources=resources)
    first = evaluate_automation_conditions(defs, instance)
    assert first.total_requested == 0  # what was there before automation looked is not redone

    # a reference table and a daily upstream change before the same evaluation: the daily day is
    # followed downstream, the reference table's update requests nothing (not every day of 2013)
    materialize(
        [*defs.assets], selection=[AssetKey(["raw", "planes"]), AssetKey(["cleaned", "planes"])], instance=instance,
        resources=resources
    )
    materialize_days(["raw/flights", "raw/weather"], "2013-03-02", instance=instance, resources=resources)
    second = evaluate_automation_conditions(defs, instance, cursor=first.cursor)

    day = {"2013-03-02"}
    assert requested(second) == {"cleaned/flights": day, "cleaned/weather": day, "features/flight_features": day,
                                 "ml/online_features": day}
    assert second.total_requested == 4


@pytest.fixture
def landing(tmp_path: Path, platform_home: Path) -> Path:
    folder = tmp_path / "landing"
    for day in ("2013-02-01", "2013-02-02"):
        for table in ("flights", "weather"):
            write_landing_day(folder, table, day)
        published_together(folder, day)
    return folder


def published_together(folder: Path, day: str) -> None:
    """One modification time for a day's files: the schedule groups tables by (day, publication
    second), and on a busy machine two files written in a row can straddle a second."""
    now = dt.datetime.now().timestamp()
    for table in ("flights", "weather"):
        os.utime(folder / table / f"{day}.csv", (now, now))


def evaluate_schedule(instance, landing: Path):
    repository = defs.get_repository_def()
    schedule = repository.get_schedule_def(automation.INGEST_SCHEDULE)
    with build_schedule_context(
        instance=instance,
        repository_def=repository,
        resources={"source": SourceResource(landing_dir=str(landing))},
        scheduled_execution_time=dt.datetime.now(dt.timezone.utc),
    ) as context:
        return schedule.evaluate_tick(context)


def run_request(request, instance, landing: Path, raise_on_error: bool = True):
    resources = {**build_resources(), "source": SourceResource(landing_dir=str(landing))}
    return materialize(
        [*defs.assets, *defs.asset_checks],
        selection=list(request.asset_selection),
        partition_key=request.partition_key,
        tags=request.tags,
        instance=instance,
        resources=resources,
        raise_on_error=raise_on_error,
    )


def test_the_schedule_ingests_the_newest_landing_day_once_per_version_of_the_file(instance, landing):
    ticked = evaluate_schedule(instance, landing)
    assert [(r.partition_key, set(r.asset_selection)) for r in ticked.run_requests] == [("2013-02-02", set(RAW))]
    assert run_request(ticked.run_requests[0], instance, landing).success

    assert not evaluate_schedule(instance, landing).run_requests  # already there

    # a new day arrives, but its flights file is truncated: one attempt, then wait for a new version
    write_landing_day(landing, "flights", "2013-02-03")
    write_landing_day(landing, "weather", "2013-02-03")
    broken = landing / "flights" / "2013-02-03.csv"
    broken.write_text(broken.read_text()[:5000])
    published_together(landing, "2013-02-03")
    ticked = evaluate_schedule(instance, landing)
    assert [r.partition_key for r in ticked.run_requests] == ["2013-02-03"]
    assert not run_request(ticked.run_requests[0], instance, landing, raise_on_error=False).success
    assert not evaluate_schedule(instance, landing).run_requests

    # the file is fixed (a new version): ingested again, and only the table that needs it
    write_landing_day(landing, "flights", "2013-02-03")
    later = dt.datetime.now().timestamp() + 5
    os.utime(broken, (later, later))
    ticked = evaluate_schedule(instance, landing)
    assert [(r.partition_key, list(r.asset_selection)) for r in ticked.run_requests] == [("2013-02-03", [RAW[0]])]
    assert run_request(ticked.run_requests[0], instance, landing).success


def drift_result(instance, passed: bool, severity: AssetCheckSeverity, check: AssetCheckKey = DRIFT, days=()) -> None:
    """Report a check evaluation the way the drift check words its failures."""
    metadata = {"failed_partition_keys": ", ".join(days)} if days else {}
    instance.report_runless_asset_event(
        AssetCheckEvaluation(
            asset_key=check.asset_key, check_name=check.name, passed=passed, severity=severity, metadata=metadata
        )
    )


def test_one_error_drift_event_gives_one_retrain_on_the_data_up_to_the_drifted_day(instance):
    sensor = defs.get_repository_def().get_sensor_def(automation.RETRAIN_SENSOR)
    assert sensor.default_status == DefaultSensorStatus.RUNNING

    def tick(cursor):
        return sensor.evaluate_tick(build_sensor_context(instance=instance, cursor=cursor, definitions=defs))

    quiet = tick(None)
    assert not quiet.run_requests
    # the sensor launches a retrain only when the windows' feature partitions are stored (recorded
    # here the way any run records them; their rows do not matter to the sensor)
    from dagster import AssetMaterialization

    for day in pd.date_range("2013-01-01", "2013-08-02").strftime("%Y-%m-%d"):
        instance.report_runless_asset_event(AssetMaterialization(asset_key=DRIFT.asset_key, partition=day))

    drift_result(instance, passed=True, severity=AssetCheckSeverity.ERROR)
    drift_result(instance, passed=False, severity=AssetCheckSeverity.WARN, days=["2013-07-10"])
    drift_result(instance, passed=False, severity=AssetCheckSeverity.ERROR, check=AssetCheckKey(DRIFT.asset_key, "other"))
    ignored = tick(quiet.cursor)
    assert not ignored.run_requests

    drift_result(instance, passed=False, severity=AssetCheckSeverity.ERROR, days=["2013-07-09", "2013-07-10"])
    retrain = tick(ignored.cursor)
    [request] = retrain.run_requests
    assert list(request.asset_selection) == [automation.MODEL_KEY]
    assert request.tags[automation.TRIGGER_TAG] == automation.RETRAIN_SENSOR
    windows = request.run_config["ops"]["ml__delay_model"]["config"]
    assert windows["holdout_last"] == "2013-07-10" and windows["holdout_first"] == "2013-06-13"
    assert windows["train_first"] == "2013-01-01" and windows["train_last"] < windows["holdout_first"]

    assert not tick(retrain.cursor).run_requests  # the same event never retrains twice

    drift_result(instance, passed=False, severity=AssetCheckSeverity.ERROR, days=["2013-08-01"])
    drift_result(instance, passed=False, severity=AssetCheckSeverity.ERROR, days=["2013-08-02"])
    coalesced = tick(retrain.cursor)
    assert len(coalesced.run_requests) == 1  # two failures in one tick: one retrain, up to the newer day
    assert coalesced.run_requests[0].run_config["ops"]["ml__delay_model"]["config"]["holdout_last"] == "2013-08-02"
    assert coalesced.run_requests[0].run_key != request.run_key

    drift_result(instance, passed=False, severity=AssetCheckSeverity.ERROR, days=["2013-02-01"])
    early = tick(coalesced.cursor)
    assert not early.run_requests and "too little history" in early.skip_message


def test_a_real_error_drift_result_on_july_launches_a_retrain_ending_that_day(instance, resources, monkeypatch):
    from dagster import AssetSelection

    from data_platform import drift
    from data_platform.assets.features import REFERENCE_INPUTS
    from data_platform.checks.drift import FEATURE_DRIFT_CHECK

    pipeline = AssetSelection.assets(*RAW, *CLEANED, DRIFT.asset_key).without_checks()
    materialize(
        [*defs.assets], selection=AssetSelection.assets(*REFERENCE_INPUTS).without_checks(),
        instance=instance, resources=resources,
    )
    for first, last in (("2013-01-01", "2013-01-07"), ("2013-07-10", "2013-07-10")):
        materialize_days(pipeline, first, last, instance=instance, resources=resources)
    monkeypatch.setenv(drift.REFERENCE_ENV, "2013-01-01..2013-01-07")  # no champion needed for the reference
    sensor = defs.get_repository_def().get_sensor_def(automation.RETRAIN_SENSOR)
    before = sensor.evaluate_tick(build_sensor_context(instance=instance, definitions=defs))

    checked = materialize_days(AssetSelection.checks(FEATURE_DRIFT_CHECK), "2013-07-10", instance=instance, resources=resources)
    [evaluation] = [e.event_specific_data for e in checked.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert not evaluation.passed and evaluation.severity == AssetCheckSeverity.ERROR  # summer against January

    # The retraining windows (holdout 06-13..07-10, training up to 180 days before 05-14) have no
    # features stored here: the sensor says so instead of launching a run that would fail.
    after = sensor.evaluate_tick(build_sensor_context(instance=instance, definitions=defs, cursor=before.cursor))
    assert not after.run_requests
    assert "features/flight_features lacks" in after.skip_message and "2013-07-10" in after.skip_message

    # The skipped event is not forgotten: once the features of (shorter) windows are stored, the next
    # tick launches the retrain without a new drift result, and only once.
    monkeypatch.setattr(automation, "HOLDOUT_DAYS", 1)
    monkeypatch.setattr(automation, "TRAIN_DAYS", 7)
    monkeypatch.setattr(automation, "MIN_TRAIN_DAYS", 7)
    still = sensor.evaluate_tick(build_sensor_context(instance=instance, definitions=defs, cursor=after.cursor))
    assert not still.run_requests and "features/flight_features lacks" in still.skip_message
    materialize_days(pipeline, "2013-06-05", "2013-06-11", instance=instance, resources=resources)  # 07-10 - 29 days
    again = sensor.evaluate_tick(build_sensor_context(instance=instance, definitions=defs, cursor=still.cursor))
    [request] = again.run_requests
    assert request.run_config["ops"]["ml__delay_model"]["config"] == {
        "train_first": "2013-06-05", "train_last": "2013-06-11", "holdout_first": "2013-07-10", "holdout_last": "2013-07-10"}
    assert request.tags[automation.DRIFT_EVENTS_TAG] == str(evaluation_id(instance))
    done = sensor.evaluate_tick(build_sensor_context(instance=instance, definitions=defs, cursor=again.cursor))
    assert not done.run_requests


def evaluation_id(instance) -> int:
    """The id of the one failed feature drift check execution recorded."""
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

    from data_platform.checks.drift import FEATURE_DRIFT_CHECK

    [record] = instance.event_log_storage.get_asset_check_execution_history(
        FEATURE_DRIFT_CHECK, limit=10, status={AssetCheckExecutionRecordStatus.FAILED})
    return record.id


class Receiver(BaseHTTPRequestHandler):
    received: list = []
    delay = 0.0

    def do_POST(self):  # noqa: N802 (http.server API)
        import time

        time.sleep(self.delay)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    Receiver.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/alerts"
    server.shutdown()
    server.server_close()


@pytest.fixture
def failed_run(tmp_path, instance):
    """A real failed run: raw/flights over a landing day whose file is not UTF-8."""
    landing = tmp_path / "landing"
    write_landing_day(landing, "flights", "2013-04-01")
    (landing / "flights" / "2013-04-01.csv").write_bytes(b"year,month\n\xff\xfe2013,4\n")
    resources = {**build_resources(), "source": SourceResource(landing_dir=str(landing))}
    result = materialize_days(["raw/flights"], "2013-04-01", instance=instance, resources=resources, raise_on_error=False)
    assert not result.success
    return result


def run_failure_context(instance, result):
    return build_run_status_sensor_context(
        sensor_name=automation.FAILURE_SENSOR,
        dagster_event=result.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=result.dagster_run,
    ).for_run_failure()


def test_a_failed_run_is_recorded_and_posted_to_the_webhook(instance, failed_run, webhook, platform_home, monkeypatch):
    monkeypatch.setenv(automation.WEBHOOK_ENV, webhook)

    automation.record_run_failures(run_failure_context(instance, failed_run))

    lines = (platform_home / "ops" / "run_failures.jsonl").read_text().splitlines()
    record = json.loads(lines[-1])
    assert record["run_id"] == failed_run.run_id
    assert record["assets"] == ["raw/flights"] and record["partitions"] == ["2013-04-01", "2013-04-01"]
    assert "2013-04-01.csv" in record["steps"][0]["error"] and "UTF-8" in record["steps"][0]["error"]
    assert record["rerun"].endswith("--select 'raw/flights' --partition 2013-04-01")
    [posted] = Receiver.received
    assert posted["failure"] == record and failed_run.run_id[:8] in posted["text"]


def test_a_bad_webhook_never_fails_the_sensor(instance, failed_run, webhook, platform_home, monkeypatch):
    monkeypatch.setenv(automation.WEBHOOK_ENV, "http://127.0.0.1:9/nothing-listens-here")
    automation.record_run_failures(run_failure_context(instance, failed_run))
    monkeypatch.setenv(automation.WEBHOOK_ENV, "not a url")
    automation.record_run_failures(run_failure_context(instance, failed_run))

    assert len((platform_home / "ops" / "run_failures.jsonl").read_text().splitlines()) == 2
    Receiver.delay = 2.0
    try:
        problem = automation.post_webhook(webhook, {"run_id": "x" * 8, "assets": [], "job": "j", "message": "m"}, timeout=0.5)
    finally:
        Receiver.delay = 0.0
    assert problem is not None and "timed out" in problem.lower()

"""Automation and operations: what runs without a person clicking, and what a person sees when it fails.

* Declarative automation: every daily asset with upstream assets follows its daily upstream
  partitions (`follow_daily_upstream`), evaluated by `automation_condition_sensor` (RUNNING).
* `ingest_newest_source_partition` (schedule, hourly, RUNNING): when the source has a partition
  raw does not have yet (or a landing file re-published after it was ingested), ingest it; the
  downstream assets follow through the automation conditions.
* `retrain_on_feature_drift` (sensor, RUNNING): an ERROR failure of the feature drift check
  launches one retraining of `ml/delay_model`.
* `record_run_failures` (run-failure sensor, RUNNING): every failed run becomes a line in
  `$DATA_PLATFORM_HOME/ops/run_failures.jsonl`, a line in the sensor's tick log and, when
  `DATA_PLATFORM_ALERT_WEBHOOK` is set, a JSON POST to that URL.

Environment: DATA_PLATFORM_ALERT_WEBHOOK (URL for failure alerts, unset = none),
DATA_PLATFORM_UI_URL (base URL put in alerts, default http://127.0.0.1:3000).
"""

import datetime as dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from dagster import (
    AssetCheckSeverity,
    AssetKey,
    AssetSelection,
    AssetsDefinition,
    AssetSpec,
    AutomationCondition,
    AutomationConditionSensorDefinition,
    DagsterEventType,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunRequest,
    RunsFilter,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    map_asset_specs,
    run_failure_sensor,
    schedule,
    sensor,
)

from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from data_platform.checks import freshness
from data_platform.checks.drift import FEATURE_DRIFT_CHECK, is_retraining_signal
from data_platform.partitions import first_partition_day
from data_platform.settings import home_path
from data_platform.datasets import registry
from data_platform.ingest import SourceResource

MODEL_KEY = AssetKey(["ml", "delay_model"])
WEBHOOK_ENV = "DATA_PLATFORM_ALERT_WEBHOOK"
UI_URL_ENV = "DATA_PLATFORM_UI_URL"
WEBHOOK_TIMEOUT_SECONDS = 5.0
FAILURE_LOG = ("ops", "run_failures.jsonl")

TRIGGER_TAG = "data_platform/trigger"
INGEST_KEY_TAG = "data_platform/ingest_key"
DRIFT_EVENTS_TAG = "data_platform/drift_check_executions"
CURSOR_OVERLAP = 300.0  # seconds of failures re-read each tick, to catch evaluations written late
HOLDOUT_DAYS, TRAIN_DAYS, MIN_TRAIN_DAYS = 28, 180, 28  # retraining windows after drift

AUTOMATION_SENSOR = "automation_condition_sensor"
INGEST_SCHEDULE = "ingest_newest_source_partition"
RETRAIN_SENSOR = "retrain_on_feature_drift"
FAILURE_SENSOR = "record_run_failures"


# --- declarative automation -----------------------------------------------------------------


def follow_daily_upstream(unpartitioned_upstream: Sequence[AssetKey]) -> AutomationCondition:
    """`AutomationCondition.eager()` over every partition, reacting to daily upstreams only.

    Stock `eager()` considers only the latest time window, which for the bundled replay (a partitions
    definition that ended) is its last day forever; a re-ingested March day would never flow downstream. A change
    to an unpartitioned upstream (a reference table, the model) would request every partition of a
    year at once: that is a deliberate backfill, not automation, so those updates are ignored here
    (their absence still holds a partition back, through `any_deps_missing`).
    """
    updated = AutomationCondition.any_deps_updated()
    if unpartitioned_upstream:
        updated = updated.ignore(AssetSelection.assets(*unpartitioned_upstream))
    return (
        (AutomationCondition.newly_missing() | updated).since_last_handled()
        & ~AutomationCondition.any_deps_missing()
        & ~AutomationCondition.any_deps_in_progress()
        & ~AutomationCondition.in_progress()
    ).with_label("eager over every partition, following daily upstreams")


def automation_condition(spec: AssetSpec, daily_keys: set[AssetKey]) -> Optional[AutomationCondition]:
    """Daily assets with upstream assets follow them; roots are ingested by the schedule, the model
    is retrained on drift or by hand."""
    upstream = [dep.asset_key for dep in spec.deps]
    if spec.key not in daily_keys or not upstream:
        return spec.automation_condition
    return follow_daily_upstream([key for key in upstream if key not in daily_keys])


def build_automation_sensor() -> AutomationConditionSensorDefinition:
    return AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR,
        target=AssetSelection.all(),
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        run_tags={TRIGGER_TAG: "automation_condition"},
        description="Evaluates the assets' automation conditions: daily assets follow their daily upstream partitions.",
    )


# --- ingest the newest partition the source has -----------------------------------------------


def ingest_requests(context, source: SourceResource, raw_keys: Sequence[AssetKey]) -> list[RunRequest]:
    """Run requests for raw daily tables whose newest source partition is not ingested yet."""
    by_day: dict[tuple[str, str], list[AssetKey]] = {}
    for key in raw_keys:
        mark = freshness.high_water(source, key.path[-1])
        if mark is None:
            continue
        day = mark.day.isoformat()
        ingested_at = freshness.materialized_at(context.instance, key, day)
        if ingested_at is not None and (not mark.republishable or ingested_at >= mark.available_at):
            continue
        ingest_key = f"{day}@{int(mark.available_at.timestamp())}"
        by_day.setdefault((day, ingest_key), []).append(key)
    requests = []
    for (day, ingest_key), keys in sorted(by_day.items()):
        if context.instance.get_run_records(RunsFilter(tags={INGEST_KEY_TAG: ingest_key}), limit=1):
            continue  # this version of the partition was ingested (or tried) once already
        requests.append(
            RunRequest(
                run_key=ingest_key,
                partition_key=day,
                asset_selection=keys,
                tags={TRIGGER_TAG: INGEST_SCHEDULE, INGEST_KEY_TAG: ingest_key},
            )
        )
    return requests


def build_ingest_schedule(raw_keys: Sequence[AssetKey], name: str = INGEST_SCHEDULE) -> ScheduleDefinition:
    @schedule(
        name=name,
        cron_schedule="15 * * * *",
        execution_timezone="UTC",
        target=AssetSelection.assets(*raw_keys),
        default_status=DefaultScheduleStatus.RUNNING,
        description=(
            "Hourly: ingests the newest partition the source has when raw does not have it yet (or the "
            "landing file was re-published since); downstream assets follow by automation condition. "
            "Each version of a partition is attempted once: fix a bad file and it is picked up again."
        ),
    )
    def ingest_newest_source_partition(context: ScheduleEvaluationContext, source: SourceResource):
        requests = ingest_requests(context, source, raw_keys)
        if not requests:
            return SkipReason("raw already has the newest partition each source offers")
        for request in requests:
            context.log.info(f"ingesting {request.partition_key} of {', '.join(k.to_user_string() for k in request.asset_selection)}")
        return requests

    return ingest_newest_source_partition


# --- retrain on drift --------------------------------------------------------------------------


def retrain_windows(newest_drifted: dt.date) -> Optional[dict]:
    """Model config that retrains on recent data: hold out the `HOLDOUT_DAYS` ending with the newest
    drifted day, leave a gap of the features' longest look-back (no holdout feature reads a
    training day), train on up to `TRAIN_DAYS` before it. None when there is too little history.

    The model's default windows end with the newest feature day, which may be later than the drift."""
    from data_platform.assets.features import PARTITIONS
    from data_platform.features import LOOKBACK_DAYS

    holdout_first = newest_drifted - dt.timedelta(days=HOLDOUT_DAYS - 1)
    train_last = holdout_first - dt.timedelta(days=LOOKBACK_DAYS + 1)
    train_first = max(first_partition_day(PARTITIONS), train_last - dt.timedelta(days=TRAIN_DAYS - 1))
    if (train_last - train_first).days + 1 < MIN_TRAIN_DAYS:
        return None
    return {"train_first": train_first.isoformat(), "train_last": train_last.isoformat(),
            "holdout_first": holdout_first.isoformat(), "holdout_last": newest_drifted.isoformat()}


def missing_feature_days(instance, windows: dict) -> list[str]:
    """Days of the training and holdout windows without a materialized feature partition."""
    from data_platform.assets.features import FEATURES_KEY

    have = instance.get_materialized_partitions(FEATURES_KEY)
    needed = []
    for first, last in ((windows["train_first"], windows["train_last"]), (windows["holdout_first"], windows["holdout_last"])):
        day, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
        while day <= end:
            needed.append(day.isoformat())
            day += dt.timedelta(days=1)
    return [day for day in needed if day not in have]


def drifted_days(record, evaluation) -> set[dt.date]:
    """The partitions an ERROR drift result names: its per-partition table, its list of failed
    partitions, or the partition the result was recorded for."""
    days = set()
    table = evaluation.metadata.get("per_partition")
    for row in getattr(getattr(table, "value", None), "records", None) or []:
        if row.data.get("severity") in ("ERROR", "WARN"):
            days.add(row.data["partition"])
    listed = evaluation.metadata.get("failed_partition_keys")
    if not days and listed is not None:
        days = {key.strip() for key in str(listed.value).split(",") if key.strip() and key.strip() != "..."}
    days |= {key for key in (record.partition, evaluation.partition) if key}
    found = set()
    for key in days:
        try:
            found.add(dt.date.fromisoformat(key))
        except ValueError:
            pass
    return found


def drift_retrain_request(context: SensorEvaluationContext, model_op: str):
    """One RunRequest for ml/delay_model per tick that saw new ERROR failures of the feature drift
    check, trained on the windows up to the newest drifted day (`retrain_windows`).

    The cursor remembers which failed executions were already seen (by execution id), for the
    failures of the last `CURSOR_OVERLAP` before the newest one seen: an evaluation written late
    (its run finished after a newer one) is still caught, and none is acted on twice. Several new
    failures seen in one tick (a backfill over many drifted days) give one retrain. Failures whose
    retrain was skipped because the windows lack features stay pending in the cursor: each tick
    looks again, and the retrain is launched once the features are there.
    """
    state = json.loads(context.cursor) if context.cursor else {"after": 0.0, "seen": []}
    seen = set(state["seen"])
    failures = context.instance.event_log_storage.get_asset_check_execution_history(
        FEATURE_DRIFT_CHECK, limit=500, status={AssetCheckExecutionRecordStatus.FAILED}
    )
    new = []
    for record in failures:
        evaluation = record.event.dagster_event.event_specific_data if record.event else None
        if (
            evaluation is not None
            and record.event.timestamp > state["after"]
            and record.id not in seen
            and is_retraining_signal(evaluation)
        ):
            new.append((record, evaluation))
    newest = max([state["after"] + CURSOR_OVERLAP, *(r.event.timestamp for r, _ in new)])
    after = newest - CURSOR_OVERLAP
    recent = [r.id for r in failures if r.event and r.event.timestamp > after]
    # A drift event: its check execution id, the run that recorded it, the partitions it names.
    events = {event["id"]: event for event in state.get("pending", [])}
    for record, evaluation in new:
        events[record.id] = {"id": record.id, "run": record.run_id or "",
                             "days": sorted(d.isoformat() for d in drifted_days(record, evaluation))}
    cursor = {"after": after, "seen": sorted(recent)}
    context.update_cursor(json.dumps(cursor))
    if not events:
        return SkipReason(f"no new ERROR result of {FEATURE_DRIFT_CHECK.to_user_string()}")
    ids = [str(event_id) for event_id in sorted(events)]
    days = sorted({dt.date.fromisoformat(day) for event in events.values() for day in event["days"]})
    runs = sorted({event["run"] for event in events.values() if event["run"]})
    event = (
        f"{len(events)} ERROR result(s) of {FEATURE_DRIFT_CHECK.to_user_string()} (check executions "
        f"{', '.join(ids)}; runs {', '.join(runs) or 'none'}; drifted partitions "
        f"{', '.join(d.isoformat() for d in days[:10]) or 'not recorded'}{' ...' if len(days) > 10 else ''})"
    )
    tags = {TRIGGER_TAG: RETRAIN_SENSOR, DRIFT_EVENTS_TAG: ",".join(ids)[:200]}
    if not days:
        context.log.info(f"{event}: retraining {MODEL_KEY.to_user_string()} on its configured windows")
        return RunRequest(run_key=f"feature-drift-{ids[-1]}", asset_selection=[MODEL_KEY], tags=tags)
    windows = retrain_windows(days[-1])
    if windows is None:
        return SkipReason(f"{event}: too little history before {days[-1]} to retrain on recent data")
    missing = missing_feature_days(context.instance, windows)
    if missing:  # the run would fail reading them: say what to materialize, and look again next tick
        context.update_cursor(json.dumps({**cursor, "pending": list(events.values())}))
        return SkipReason(
            f"{event}: features/flight_features lacks {len(missing)} day(s) of the retraining windows "
            f"{windows['train_first']}..{windows['holdout_last']} (first: {missing[0]}); materialize them "
            f"(the retrain follows at the next tick), or {MODEL_KEY.to_user_string()} with the run config {windows}"
        )
    context.log.info(f"{event}: retraining {MODEL_KEY.to_user_string()} with {windows}")
    return RunRequest(
        run_key=f"feature-drift-{ids[-1]}",
        asset_selection=[MODEL_KEY],
        run_config={"ops": {model_op: {"config": windows}}},
        tags=tags,
    )


def build_retrain_sensor(model_op: str) -> SensorDefinition:
    @sensor(
        name=RETRAIN_SENSOR,
        asset_selection=[MODEL_KEY],
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            f"Retrains {MODEL_KEY.to_user_string()} on the data up to the newest drifted day when "
            f"{FEATURE_DRIFT_CHECK.to_user_string()} fails with ERROR severity; one retrain per drift "
            "event (new failures seen in the same tick share one)."
        ),
    )
    def retrain_on_feature_drift(context: SensorEvaluationContext):
        return drift_retrain_request(context, model_op)

    return retrain_on_feature_drift


# --- run failures ------------------------------------------------------------------------------


def failure_record(context: RunFailureSensorContext) -> dict:
    run = context.dagster_run
    tags = run.tags
    steps = []
    for event in context.get_step_failure_events():
        error = getattr(event.event_specific_data, "error", None)
        steps.append({"step": event.step_key, "error": (error.message.strip() if error else event.message or "")[:2000]})
    assets = sorted(key.to_user_string() for key in (run.asset_selection or _planned_assets(context)))
    first = tags.get("dagster/asset_partition_range_start") or tags.get("dagster/partition")
    last = tags.get("dagster/asset_partition_range_end") or first
    ui = os.environ.get(UI_URL_ENV, "http://127.0.0.1:3000").rstrip("/")
    return {
        "failed_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "run_id": run.run_id,
        "job": run.job_name,
        "message": context.failure_event.message,
        "steps": steps,
        "assets": assets,
        "partitions": [first, last] if first else None,
        "retry_number": int(tags.get("dagster/retry_number", 0)),
        "triggered_by": tags.get(TRIGGER_TAG) or tags.get("dagster/sensor_name") or tags.get("dagster/schedule_name")
        or ("backfill " + tags["dagster/backfill"] if "dagster/backfill" in tags else "manual"),
        "url": f"{ui}/runs/{run.run_id}",
        "rerun": _rerun_command(assets, first, last),
    }


def _planned_assets(context: RunFailureSensorContext) -> set[AssetKey]:
    """Assets the run planned to materialize (a run launched in process records no selection)."""
    records = context.instance.get_records_for_run(
        context.dagster_run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION_PLANNED
    ).records
    return {record.event_log_entry.dagster_event.asset_key for record in records}


def _rerun_command(assets: list[str], first: Optional[str], last: Optional[str]) -> Optional[str]:
    if not assets:
        return None
    command = f"dagster asset materialize -m data_platform.definitions --select '{','.join(assets)}'"
    if first and first != last:
        return f"{command} --partition-range {first}...{last}"
    return f"{command} --partition {first}" if first else command


def failure_log_path() -> Path:
    path = home_path(*FAILURE_LOG)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def append_failure(record: dict) -> Path:
    path = failure_log_path()
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, sort_keys=True) + "\n")
    return path


def post_webhook(url: str, record: dict, timeout: float = WEBHOOK_TIMEOUT_SECONDS) -> Optional[str]:
    """POST the failure as JSON (with a `text` line, which chat webhooks display). Returns None on
    success, else what went wrong; never raises."""
    import urllib.request

    text = f"data_platform run {record['run_id'][:8]} failed ({', '.join(record['assets']) or record['job']}): {record['message']}"
    body = json.dumps({"text": text, "failure": record}).encode()
    try:
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if not 200 <= response.status < 300:
                return f"HTTP {response.status}"
    except Exception as error:  # a bad webhook must never fail the sensor
        return f"{type(error).__name__}: {error}"
    return None


def report_failure(context: RunFailureSensorContext) -> dict:
    record = failure_record(context)
    path = append_failure(record)
    context.log.error(
        f"run {record['run_id']} ({record['job']}, assets {', '.join(record['assets']) or '-'}, partitions "
        f"{record['partitions'] or '-'}) failed: {record['message']}; recorded in {path}; re-run: {record['rerun']}"
    )
    for step in record["steps"]:
        context.log.error(f"  step {step['step']}: {step['error'].splitlines()[0] if step['error'] else ''}")
    url = os.environ.get(WEBHOOK_ENV)
    if url:
        problem = post_webhook(url, record)
        if problem:
            context.log.warning(f"alert webhook {url} not reached: {problem}")
        else:
            context.log.info(f"alert posted to {url}")
    return record


@run_failure_sensor(
    name=FAILURE_SENSOR,
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description=(
        "Records every failed run in $DATA_PLATFORM_HOME/ops/run_failures.jsonl and in this sensor's "
        "tick log, and posts it to $DATA_PLATFORM_ALERT_WEBHOOK when set."
    ),
)
def record_run_failures(context: RunFailureSensorContext):
    report_failure(context)


# --- everything together -------------------------------------------------------------------------


def specs_of(asset) -> list[AssetSpec]:
    return [asset] if isinstance(asset, AssetSpec) else list(asset.specs)


@dataclass
class Operations:
    """Assets with freshness policies and automation conditions, plus the checks, sensors and
    schedules that operate them."""

    assets: list
    asset_checks: list = field(default_factory=list)
    sensors: list = field(default_factory=list)
    schedules: list = field(default_factory=list)


def operate(assets: Sequence[AssetsDefinition], live_source: bool) -> Operations:
    """Attach a FreshnessPolicy and an automation condition to every asset, and build the freshness
    checks, sensors and schedule for the asset graph as it is (it grows without edits here)."""
    specs = [spec for asset in assets for spec in specs_of(asset)]
    daily = {spec.key for spec in specs if freshness.is_daily(spec)}
    # Plain AssetSpecs (records written by checks) cannot be executed: no automation for them.
    external = {asset.key for asset in assets if isinstance(asset, AssetSpec)}

    def attach(spec: AssetSpec) -> AssetSpec:
        return spec.replace_attributes(
            freshness_policy=freshness.freshness_policy(spec, live_source),
            automation_condition=None if spec.key in external else automation_condition(spec, daily),
        )

    mapped = list(map_asset_specs(attach, assets))
    mapped_specs = [spec for asset in mapped for spec in specs_of(asset)]
    operations = Operations(assets=mapped, sensors=[build_automation_sensor(), record_run_failures])
    checks = freshness.build_partition_freshness_checks(mapped_specs)
    if checks is not None:
        operations.asset_checks.append(checks)
        operations.sensors.append(freshness.build_freshness_sensor(checks))
    # A schedule's target is one job, and one job holds one partitions definition: one schedule per
    # distinct partitioning; the first (the repository's first daily dataset's) keeps the plain name.
    by_partitions: dict[tuple, list[AssetKey]] = {}
    for name, dataset in registry().items():
        if AssetKey(["raw", name]) in daily:
            part = dataset.partitioning
            by_partitions.setdefault((part.cadence, part.start, part.end, part.time_zone), []).append(
                AssetKey(["raw", name]))
    for index, raw_daily in enumerate(by_partitions.values()):
        name = INGEST_SCHEDULE if index == 0 else f"{INGEST_SCHEDULE}_{'_'.join(k.path[-1] for k in raw_daily)}"
        operations.schedules.append(build_ingest_schedule(raw_daily, name[:200]))
    model = [asset for asset in assets if isinstance(asset, AssetsDefinition) and MODEL_KEY in asset.keys]
    if model:
        operations.sensors.append(build_retrain_sensor(model[0].node_def.name))
    return operations

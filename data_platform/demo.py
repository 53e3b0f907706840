"""Headless demo: the whole graph over a window of the bundled 2013 data, one progress line per step.

The window is chosen so that what it shows is true:
- raw and cleaned tables from 28 days before the first feature day, because features read 28 days
  of history (a feature day without its history is not a fair feature day);
- the model trains on September to November and is evaluated on the first week of December;
- predictions, model performance and prediction drift cover December only: days the model has not
  seen, inside the newest 120 partitions that the asset pages plot per partition;
- feature drift is measured for the training days (they pass) and December (new days: what drifts
  there is real, and the summary says what it means);
- the online store holds December, so `make serve` answers right after the demo.

Each step is one Dagster run (its full event log is on its run page in the UI); the console shows
one line per step and the summary. Everything Dagster, MLflow and Evidently print goes to the log
file named at the start.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

from data_platform.settings import PROJECT_ROOT, home_path

HISTORY_FIRST = "2013-08-06"    # 28 days of history before the first feature day
FEATURES_FIRST = "2013-09-03"   # the oldest of the newest 120 partitions: every plotted day is in the plots
TRAIN = ("2013-09-03", "2013-11-30")
HOLDOUT = ("2013-12-01", "2013-12-07")
SCORED = ("2013-12-01", "2013-12-31")
LAST = "2013-12-31"             # the source's newest day: freshness checks pass
MODEL_PARAMS = {"max_iter": 100}  # a month of flights supports fewer boosting rounds than a year

# What a failing check means, in a sentence a newcomer can act on (by check name).
MEANINGS = {
    "volume_within_day_of_week_baseline": "fewer rows than the same weekdays around it: the bundled weather has no "
                                          "observations for 2013-12-31, a real gap in the source",
    "no_implausible_values_nulled": "sensor glitches the contract set to NULL (the 1048 mph wind, the 13 F reading)",
    "feature_drift": "these days differ from the model's training days by more than the training days differ "
                     "from each other; ERROR (a share of columns past error_share) is the retraining signal",
    "prediction_drift": "the model's scores of these days are distributed unlike its scores of its training days",
    "newest_source_partition_on_time": "freshness: the asset lacks the source's newest partition (2013-12-31) "
                                       "or got it late; expected when a demo loads part of the year",
}


@dataclass
class Step:
    title: str
    assets: list[str]
    first: Optional[str] = None
    last: Optional[str] = None
    checks_only: bool = False
    run_config: dict = field(default_factory=dict)


def steps() -> list[Step]:
    from data_platform.assets.ml import MODEL_KEY

    model_config = {"train_first": TRAIN[0], "train_last": TRAIN[1],
                    "holdout_first": HOLDOUT[0], "holdout_last": HOLDOUT[1], **MODEL_PARAMS}
    model_op = "__".join(MODEL_KEY.path)
    return [
        Step("reference tables", [f"{layer}/{name}" for layer in ("raw", "cleaned")
                                  for name in ("airlines", "airports", "planes")]),
        Step("raw daily files", ["raw/flights", "raw/weather"], HISTORY_FIRST, LAST),
        Step("cleaned and typed", ["cleaned/flights", "cleaned/weather"], HISTORY_FIRST, LAST),
        Step("point-in-time features", ["features/flight_features"], FEATURES_FIRST, LAST),
        Step("model: train Sep-Nov, test Dec 1-7", ["ml/delay_model"],
             run_config={"ops": {model_op: {"config": model_config}}}),
        Step("feature drift vs the champion", ["features/flight_features"], FEATURES_FIRST, LAST,
             checks_only=True),
        Step("predictions (unseen days)", ["ml/delay_predictions"], *SCORED),
        Step("model performance per day", ["ml/model_performance"], *SCORED),
        Step("online store (`make serve`)", ["ml/online_features"], *SCORED),
    ]


def ensure_dagster_home() -> None:
    """Default DAGSTER_HOME to $DATA_PLATFORM_HOME/dagster with the project's dagster.yaml, as `make` does."""
    if os.environ.get("DAGSTER_HOME"):
        return
    dagster_home = home_path("dagster")
    dagster_home.mkdir(exist_ok=True)
    if not (dagster_home / "dagster.yaml").exists():
        shutil.copy(PROJECT_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(dagster_home)


@contextlib.contextmanager
def output_to(log: Path) -> Iterator:
    """Send everything written to stdout/stderr (Dagster's event log, library warnings) to `log`;
    yields a writer to the real stdout for the progress lines."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    console = os.fdopen(os.dup(saved_out), "w", buffering=1)
    with log.open("a") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield console
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved_out, 1)
            os.dup2(saved_err, 2)
            os.close(saved_out)
            os.close(saved_err)
            console.close()


def run_demo() -> int:
    ensure_dagster_home()
    log = home_path("demo.log")
    log.write_text("")
    print(f"demo: the bundled 2013 flights, {HISTORY_FIRST}..{LAST}; one Dagster run per step "
          f"(full logs: {log} and each run's page in the UI)\n")
    print(f"{'step':<36}{'asset':<26}{'partitions':>24}{'rows':>10}{'seconds':>9}  checks")
    started = time.monotonic()
    results = []
    with output_to(log) as console:
        from dagster import DagsterInstance

        with DagsterInstance.get() as instance:
            for step in steps():
                step_started = time.monotonic()
                result = _run(step, instance)
                seconds = time.monotonic() - step_started
                results.append((step, result))
                for line in _progress_lines(step, result, seconds):
                    console.write(line + "\n")
                if not result.success:
                    console.write(f"  step failed: see {log} and run {result.run_id} in the UI\n")
                    break
    elapsed = time.monotonic() - started
    ok = all(result.success for _, result in results) and len(results) == len(steps())
    print(f"\n{'all steps succeeded' if ok else 'a step FAILED'} in {elapsed:.0f} s\n")
    print(_table_summary())
    print()
    print(_check_summary([result for _, result in results]))
    print(f"\ntables (Delta Lake): {home_path('tables')}")
    print("see it in the UI: `make dev`, then http://127.0.0.1:3000 (asset graph, per-partition plots of "
          "ml/model_performance and monitoring/feature_drift, check results, links to reports and MLflow)")
    return 0 if ok else 1


def _run(step: Step, instance):
    from dagster import AssetCheckKey, AssetKey, AssetSelection

    from data_platform.checks.drift import FEATURE_DRIFT
    from data_platform.runner import materialize_days, materialize_unpartitioned

    run_config = step.run_config or None
    if step.checks_only:
        key = AssetKey(step.assets[0].split("/"))
        selection = AssetSelection.checks(AssetCheckKey(key, FEATURE_DRIFT))
    else:
        selection = AssetSelection.assets(*(AssetKey(a.split("/")) for a in step.assets))
    if step.first:
        return materialize_days(selection, step.first, step.last, instance=instance, run_config=run_config,
                                raise_on_error=False)
    return materialize_unpartitioned(selection, instance=instance, run_config=run_config, raise_on_error=False)


def _progress_lines(step: Step, result, seconds: float) -> list[str]:
    partitions = f"{step.first}..{step.last}" if step.first else "-"
    evaluations = result.get_asset_check_evaluations()
    failed = sum(not e.passed for e in evaluations)
    checks = f"{len(evaluations) - failed} passed, {failed} failed" if evaluations else "-"
    status = "" if result.success else "  FAILED"
    materialized = {}
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        rows = materialization.metadata.get("dagster/row_count")
        key = materialization.asset_key.to_user_string()
        materialized.setdefault(key, 0)
        if rows is not None:
            materialized[key] += rows.value
    keys = step.assets if not step.checks_only else []
    if step.checks_only:
        return [f"{step.title:<36}{step.assets[0]:<26}{partitions:>24}{'-':>10}{seconds:>9.1f}  {checks}{status}"]
    lines = []
    for index, key in enumerate(keys):
        title = step.title if index == 0 else ""
        rows = materialized.get(key)
        shown = f"{rows:,}" if rows else "-"
        timing = f"{seconds:>9.1f}" if index == 0 else f"{'':>9}"
        tail = f"  {checks}{status}" if index == 0 else ""
        lines.append(f"{title:<36}{key:<26}{partitions:>24}{shown:>10}{timing}{tail}")
    return lines


def _table_summary() -> str:
    from data_platform import storage

    lines = [f"{'table':<28}{'rows':>10}{'days':>7}{'version':>9}"]
    with storage.connection() as conn:
        for name, version in storage.stored_tables(conn).items():
            columns = {row[0] for row in conn.execute(f"DESCRIBE {name}").fetchall()}
            days = "count(DISTINCT day)" if "day" in columns else "NULL"
            rows, day_count = conn.execute(f"SELECT count(*), {days} FROM {name}").fetchone()
            lines.append(f"{name:<28}{rows:>10,}{day_count if day_count is not None else '-':>7}{version:>9}")
    return "\n".join(lines)


def _check_summary(results) -> str:
    from dagster import AssetCheckSeverity

    evaluations = [e for result in results for e in result.get_asset_check_evaluations()]
    if not evaluations:
        return "checks: none evaluated"
    failed = [e for e in evaluations if not e.passed]
    lines = [f"checks: {len(evaluations) - len(failed)} passed, {len(failed)} failed"]
    for evaluation in failed:
        severity = "ERROR" if evaluation.severity == AssetCheckSeverity.ERROR else "WARN"
        lines.append(f"  {severity:<5} {evaluation.asset_key.to_user_string()} {evaluation.check_name}")
        meaning = MEANINGS.get(evaluation.check_name)
        if meaning:
            lines.append(f"        means: {meaning}")
        if evaluation.check_name == "feature_drift":
            lines.extend(_drift_by_window(evaluation))
        description = (evaluation.description or "").strip()
        if description:
            lines.append(f"        found: {description[:300]}{'...' if len(description) > 300 else ''}")
    return "\n".join(lines)


def _drift_by_window(evaluation) -> list[str]:
    """Feature drift of the training days apart from that of the later days."""
    table = evaluation.metadata.get("per_partition")
    if table is None:
        return []
    rows = [record.data for record in table.value.records]
    training = [r for r in rows if TRAIN[0] <= r["partition"] <= TRAIN[1]]
    later = [r for r in rows if r["partition"] > TRAIN[1]]
    lines = []
    for label, group in ((f"training days {TRAIN[0]}..{TRAIN[1]}", training), ("later days", later)):
        if group:
            drifted = [r for r in group if r["severity"] not in ("PASS", "no rows")]
            errors = [r["partition"] for r in drifted if r["severity"] == "ERROR"]
            lines.append(f"        {label}: {len(group) - len(drifted)} of {len(group)} pass, {len(drifted)} drift"
                         + (f" ({len(errors)} ERROR: {', '.join(errors)})" if errors else ""))
    return lines

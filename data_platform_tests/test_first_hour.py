"""What a newcomer meets in the first hour: `make demo` leaves a store to serve, `make dev`'s output
carries no run worker DEBUG lines."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance

from data_platform import demo
from data_platform.settings import PROJECT_ROOT


def test_a_run_worker_prints_no_debug_lines_and_its_event_log_keeps_every_event(platform_home: Path):
    # `make dev`'s code server launches run workers whose stderr is make dev's output; they read the
    # instance settings of DAGSTER_HOME (the project's dagster.yaml), as this CLI run does.
    dagster = Path(sys.executable).parent / "dagster"
    done = subprocess.run(
        [str(dagster), "asset", "materialize", "-m", "data_platform.definitions", "--select", "raw/airlines"],
        cwd=PROJECT_ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    output = done.stdout + done.stderr
    assert " - DEBUG - " not in output, [line for line in output.splitlines() if " - DEBUG - " in line][:5]
    with DagsterInstance.get() as instance:
        [run] = instance.get_runs()
        kinds = {record.dagster_event.event_type for record in instance.all_logs(run.run_id) if record.dagster_event}
    assert {DagsterEventType.STEP_START, DagsterEventType.ASSET_MATERIALIZATION,
            DagsterEventType.STEP_SUCCESS, DagsterEventType.RUN_SUCCESS} <= kinds


def test_the_demo_builds_the_online_store_for_the_days_it_scores_after_their_features():
    steps = demo.steps()
    assets = [asset for step in steps for asset in step.assets if not step.checks_only]
    [online] = [step for step in steps if step.assets == ["ml/online_features"]]
    assert (online.first, online.last) == demo.SCORED
    assert assets.index("ml/online_features") > assets.index("features/flight_features")

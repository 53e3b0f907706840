"""The MLflow store resource: absolute SQLite store under the data home, created safely once,
and runs that always end FINISHED or FAILED."""

from __future__ import annotations

import subprocess
import sys

import pytest

from data_platform.mlflow_store import DAGSTER_RUN_TAG, MlflowStore
from data_platform.settings import PROJECT_ROOT


def test_store_lives_under_the_data_home_with_absolute_locations(platform_home, resources):
    store = resources["mlflow"]
    assert store.tracking_uri == f"sqlite:///{platform_home / 'mlflow' / 'mlflow.db'}"
    assert store.artifact_location == (platform_home / "mlflow" / "artifacts").as_uri()
    experiment_id = store.setup()
    assert store.setup() == experiment_id
    assert store.client().get_experiment(experiment_id).artifact_location == store.artifact_location
    assert (platform_home / "mlflow" / "mlflow.db").exists()


def test_concurrent_first_use_of_a_fresh_store_succeeds(platform_home):
    code = "from data_platform.mlflow_store import MlflowStore; print(MlflowStore.from_env().setup())"
    processes = [
        subprocess.Popen([sys.executable, "-c", code], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outputs = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], [err[-2000:] for _, err in outputs]
    assert len({out.strip() for out, _ in outputs}) == 1  # one experiment, created once


def test_runs_end_finished_or_failed_never_running(platform_home, resources):
    store: MlflowStore = resources["mlflow"]
    with store.run("ok", tags={}) as run:
        ok_id = run.info.run_id
    with pytest.raises(ZeroDivisionError):
        with store.run("broken", tags={}) as run:
            broken_id = run.info.run_id
            1 / 0
    with pytest.raises(KeyboardInterrupt):
        with store.run("interrupted", tags={}) as run:
            interrupted_id = run.info.run_id
            raise KeyboardInterrupt
    client = store.client()
    assert client.get_run(ok_id).info.status == "FINISHED"
    assert client.get_run(broken_id).info.status == "FAILED"
    assert client.get_run(interrupted_id).info.status == "FAILED"


def test_abandoned_runs_of_finished_dagster_runs_are_marked_failed(platform_home, resources):
    store: MlflowStore = resources["mlflow"]
    experiment_id = store.setup()
    client = store.client()
    dead = client.create_run(experiment_id, tags={DAGSTER_RUN_TAG: "dead-run"}).info.run_id
    alive = client.create_run(experiment_id, tags={DAGSTER_RUN_TAG: "live-run"}).info.run_id
    assert store.fail_abandoned_runs(lambda run_id: run_id == "live-run") == [dead]
    assert client.get_run(dead).info.status == "FAILED"
    assert client.get_run(alive).info.status == "RUNNING"

"""The MLflow store resource: absolute SQLite store under the data home, created safely once,
and runs that always end FINISHED or FAILED."""

from __future__ import annotations

import multiprocessing

import pytest

from data_platform.mlflow_store import DAGSTER_RUN_TAG, MlflowStore


def test_store_lives_under_the_data_home_with_absolute_locations(platform_home, resources):
    store = resources["mlflow"]
    assert store.tracking_uri == f"sqlite:///{platform_home / 'mlflow' / 'mlflow.db'}"
    assert store.artifact_location == (platform_home / "mlflow" / "artifacts").as_uri()
    experiment_id = store.setup()
    assert store.setup() == experiment_id
    assert store.client().get_experiment(experiment_id).artifact_location == store.artifact_location
    assert (platform_home / "mlflow" / "mlflow.db").exists()


def first_use(barrier, results) -> None:
    """One process's first use of the store: everything imported, then setup() at the barrier."""
    import time

    import mlflow  # noqa: F401  (the slow import happens before the barrier, not between the three)

    store = MlflowStore.from_env()
    try:
        barrier.wait(timeout=120)
        released = time.time()
        results.put((released, store.setup(), None))
    except Exception as error:  # reported to the test, which fails with it
        results.put((time.time(), None, f"{type(error).__name__}: {error}"))


def test_concurrent_first_use_of_a_fresh_store_succeeds(platform_home):
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(3), context.Queue()
    processes = [context.Process(target=first_use, args=(barrier, results)) for _ in range(3)]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=180) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    assert [process.exitcode for process in processes] == [0, 0, 0]
    assert [error for _, _, error in outcomes] == [None, None, None]
    released = [at for at, _, _ in outcomes]
    assert max(released) - min(released) < 1.0  # the three calls really overlapped
    assert len({experiment for _, experiment, _ in outcomes}) == 1  # one experiment, created once
    assert len(MlflowStore.from_env().client().search_experiments()) == 2  # and the Default one


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

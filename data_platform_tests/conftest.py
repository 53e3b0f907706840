"""Shared fixtures: every test gets its own data home, Dagster home and instance on disk."""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance

from data_platform.resources import build_resources
from data_platform.settings import PROJECT_ROOT


@pytest.fixture
def platform_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh DATA_PLATFORM_HOME (warehouse, MLflow, reports) and DAGSTER_HOME for one test."""
    home = tmp_path / "data"
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    monkeypatch.setenv("DATA_PLATFORM_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    monkeypatch.delenv("DATA_PLATFORM_LANDING_DIR", raising=False)
    monkeypatch.delenv("DATA_PLATFORM_SAMPLE_FRACTION", raising=False)
    return home


@pytest.fixture
def instance(platform_home: Path) -> DagsterInstance:
    """A real, persistent (SQLite) Dagster instance in the test's Dagster home."""
    with DagsterInstance.get() as dagster_instance:
        yield dagster_instance


@pytest.fixture
def resources(platform_home: Path) -> dict:
    """Resources built from the environment of the test's data home."""
    return build_resources()


@pytest.fixture
def warehouse(platform_home: Path):
    """Read the test's tables after runs: `with warehouse() as conn: ...` (every table a view)."""
    from data_platform import storage

    return storage.connection


# --- `make dev` after a whole-graph backfill and a month's backfill, shared by the end-to-end and
# browser tests (real processes: marker real_process, left out by `make test-fast`) ---------------

GRAPH_DAYS = ["2013-12-29", "2013-12-30", "2013-12-31"]
MONTH = [f"2013-11-{day:02d}" for day in range(1, 31)]
# The model trains on two of the days and holds out the third (its defaults need a year of
# features). Small and regularised, so two days of flights do not overfit it.
MODEL_CONFIG = {"train_first": GRAPH_DAYS[0], "train_last": GRAPH_DAYS[1], "holdout_first": GRAPH_DAYS[2],
                "holdout_last": GRAPH_DAYS[2], "max_iter": 30, "min_samples_leaf": 200}


@pytest.fixture(scope="session")
def backfilled_stack(tmp_path_factory):
    """`make dev` on free ports; from nothing materialized, the UI's two backfills: the whole graph
    over GRAPH_DAYS, then every daily asset over MONTH (both as the UI sends them: partition names
    and an asset selection). Yields (stack, results); stopped with SIGTERM at the end of the session."""
    from data_platform import automation
    from data_platform.checks import freshness
    from data_platform_tests.devstack import ASSETS, DevStack

    stack = DevStack(tmp_path_factory.mktemp("make_dev")).start()
    try:
        started = time.monotonic()
        stack.wait_until_up()
        timings = {"make dev up": time.monotonic() - started}
        nodes = [node for node in stack.graphql(ASSETS % "[]")["assetNodes"] if node["isExecutable"]]
        keys = [node["assetKey"] for node in nodes]
        partitioned = [node["assetKey"] for node in nodes if node["isPartitioned"]]
        ops = {"/".join(node["assetKey"]["path"]): node["opName"] for node in nodes}
        model_op = ops[automation.MODEL_KEY.to_user_string()]
        graph = stack.launch_backfill({
            "partitionNames": GRAPH_DAYS, "assetSelection": keys, "title": "whole graph",
            "runConfigData": {"ops": {model_op: {"config": MODEL_CONFIG}}},
        })
        timings["whole-graph backfill"] = time.monotonic() - started - sum(timings.values())

        # the daemon ticks the freshness and automation sensors after it (RUNNING by default)
        backfill_done = time.time()

        def ticked(name: str):
            state = stack.sensor_state(name)
            done = [t for t in state["ticks"] if t["status"] in ("SUCCESS", "SKIPPED") and t["timestamp"] > backfill_done]
            return {"status": state["status"], "ticks": state["ticks"]} if done else None

        sensors = {name: stack.wait_until(f"a tick of {name}", lambda: ticked(name), 180, every=3)
                   for name in (freshness.SENSOR_NAME, automation.AUTOMATION_SENSOR)}
        automated = stack.automated_runs()
        graph_nodes = stack.graphql(ASSETS % json.dumps(GRAPH_DAYS))["assetNodes"]
        timings["sensors seen"] = time.monotonic() - started - sum(timings.values())

        month = stack.launch_backfill({"partitionNames": MONTH, "assetSelection": partitioned, "title": "a month"})
        timings["month backfill"] = time.monotonic() - started - sum(timings.values())
        yield stack, {"graph": graph, "month": month, "keys": keys, "partitioned": partitioned, "sensors": sensors,
                      "automated_after_graph": automated, "graph_nodes": graph_nodes, "timings": timings}
    finally:
        stack.stop(signal.SIGTERM)

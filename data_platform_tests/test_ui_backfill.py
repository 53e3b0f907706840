"""A newcomer's *Lineage → Materialize all* over two weeks, on nothing materialized, without a run
config: every run succeeds, and `make dev`'s output carries no run worker DEBUG lines. Two weeks are
too few to train on: the model and the predictions say so in their materializations."""

from __future__ import annotations

import signal

import pytest

from data_platform import automation
from data_platform_tests.devstack import ASSETS, DevStack, metadata

pytestmark = pytest.mark.real_process

DAYS = [f"2013-06-{day:02d}" for day in range(1, 15)]


def test_materialize_all_over_two_weeks_from_the_ui_is_green_and_make_dev_prints_no_debug(tmp_path):
    stack = DevStack(tmp_path).start()
    try:
        stack.wait_until_up()
        nodes = [node for node in stack.graphql(ASSETS % "[]")["assetNodes"] if node["isExecutable"]]
        backfill = stack.launch_backfill({"partitionNames": DAYS, "assetSelection": [n["assetKey"] for n in nodes],
                                          "title": "materialize all"})
        failed = [run["id"] for run in backfill["runs"] if run["status"] != "SUCCESS"]
        assert backfill["status"] == "COMPLETED_SUCCESS" and not failed, (backfill, stack.tail())
        nodes = {"/".join(node["assetKey"]["path"]): node for node in stack.graphql(ASSETS % "[]")["assetNodes"]}
        [model] = nodes[automation.MODEL_KEY.to_user_string()]["latest"]
        # two weeks are too few for the default windows: the model says why it was not trained
        assert "too few to train on" in metadata(model["metadataEntries"])["decision"]
        [scored] = nodes["ml/delay_predictions"]["latest"]
        assert "not scored" in metadata(scored["metadataEntries"])["decision"]
        output = stack.tail()
    finally:
        stack.stop(signal.SIGTERM)
    assert " - DEBUG - " not in (tmp_path / "make_dev.log").read_text(), output

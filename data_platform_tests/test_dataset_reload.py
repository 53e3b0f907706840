"""A contract dropped into DATA_PLATFORM_DATASETS_DIR appears in a running `make dev` after
*Reload definitions* (the GraphQL `reloadRepositoryLocation` mutation the UI's button sends). A typo in
it disables that dataset only: its assets show it broken with the file and line (catalog, code location,
`make dev`'s output, a browser screenshot), while every other dataset runs and the daemon keeps ticking;
fixing the file and reloading restores it."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest

from data_platform import automation
from data_platform.datasets.scaffold import new_contract
from data_platform_tests.browser import Newcomer, browser, screenshots  # noqa: F401  (fixtures)
from data_platform_tests.devstack import SENSOR, DevStack

CO2_CSV = Path(importlib.util.find_spec("statsmodels").origin).parent / "datasets" / "co2" / "co2.csv"
RELOAD = """mutation($name: String!) { reloadRepositoryLocation(repositoryLocationName: $name) { __typename
  ... on WorkspaceLocationEntry { name loadStatus locationOrLoadError { __typename
    ... on RepositoryLocation { name } ... on PythonError { message causes { message } } } }
  ... on PythonError { message } ... on RepositoryLocationNotFound { message } } }"""
GROUPS = "{ assetNodes { assetKey { path } groupName description } }"
LOCATION_GROUPS = """{ workspaceOrError { ... on Workspace { locationEntries { locationOrLoadError {
  ... on RepositoryLocation { repositories { assetGroups { groupName assetKeys { path } } } } } } } } }"""
CHECK_EXECUTIONS = """query($key: AssetKeyInput!) { assetCheckExecutions(assetKey: $key, checkName: "contract_is_valid",
  limit: 5) { status evaluation { success severity description } } }"""
NODES = "{ assetNodes { assetKey { path } assetChecksOrError { ... on AssetChecks { checks { name } } } } }"


def asset_checks(server: DevStack) -> dict[str, set[str]]:
    nodes = server.graphql(NODES)["assetNodes"]
    return {"/".join(n["assetKey"]["path"]): {c["name"] for c in (n["assetChecksOrError"] or {}).get("checks", [])}
            for n in nodes}


def groups(server: DevStack) -> dict[str, tuple[str, str]]:
    return {"/".join(n["assetKey"]["path"]): (n["groupName"], n["description"] or "")
            for n in server.graphql(GROUPS)["assetNodes"]}


def reload(server: DevStack, location: str) -> dict:
    answer = server.graphql(RELOAD, {"name": location})["reloadRepositoryLocation"]
    assert answer["__typename"] == "WorkspaceLocationEntry", answer
    return answer


@pytest.mark.real_process
def test_a_new_contract_appears_in_a_running_make_dev_after_reload_and_a_broken_one_disables_only_itself(
        tmp_path, browser, screenshots):
    contracts = tmp_path / "contracts"
    contracts.mkdir()
    server = DevStack(tmp_path)
    server.env["DATA_PLATFORM_DATASETS_DIR"] = str(contracts)
    server.start()
    try:
        location, repository = server.wait_until("the code location to load", server.loaded_location, 240)
        before = asset_checks(server)
        assert "raw/flights" in before and "raw/co2" not in before

        # A contract written while the server runs (the draft `dataset new` writes) is not picked up by itself...
        contract = new_contract("co2", CO2_CSV, "date", "%Y%m%d", folder=contracts)
        assert "raw/co2" not in asset_checks(server)
        # ... but by Reload definitions.
        entry = reload(server, location)
        assert entry["locationOrLoadError"]["__typename"] == "RepositoryLocation", entry
        after = asset_checks(server)
        assert {"raw/co2", "cleaned/co2"} <= set(after)
        assert set(after) - set(before) == {"raw/co2", "cleaned/co2"}
        assert {"matches_raw_contract", "no_duplicate_keys", "newest_source_partition_on_time"} <= after["raw/co2"]
        assert {"matches_cleaned_contract", "key_unique", "rows_conserved"} <= after["cleaned/co2"]

        # A mistake in the file (co2, after the declared partition column day and date): the reload succeeds,
        # only co2 is disabled, shown broken with the file and line.
        text = contract.read_text()
        contract.write_text(text.replace("logicalType: number", "logicalType: numbr"))
        line = contract.read_text().splitlines().index("        logicalType: numbr") + 1
        problem = f"{contract}:{line}: schema[0].properties[2].logicalType: 'numbr' is not one of"
        reloaded_at = time.time()
        entry = reload(server, location)
        assert entry["locationOrLoadError"]["__typename"] == "RepositoryLocation", entry
        nodes = groups(server)
        assert set(nodes) == set(after), "every asset stays in the catalog"
        for key in ("raw/co2", "cleaned/co2"):
            group, description = nodes[key]
            assert group == "broken_contracts" and description.startswith("BROKEN CONTRACT: co2.odcs.yaml")
            assert problem in description, description
            assert asset_checks(server)[key] == {"contract_is_valid"}
        assert nodes["cleaned/flights"][0] == "cleaned" and after["cleaned/flights"] == asset_checks(server)["cleaned/flights"]
        output = server.log.read_text()  # make dev's output
        assert "dataset 'co2' is disabled: 1 problem(s)" in output and problem in output
        # The code location's page lists its asset groups: broken_contracts holds the broken dataset.
        entry = server.graphql(LOCATION_GROUPS)["workspaceOrError"]["locationEntries"][0]["locationOrLoadError"]
        shown = {g["groupName"]: {"/".join(k["path"]) for k in g["assetKeys"]}
                 for g in entry["repositories"][0]["assetGroups"]}
        assert shown["broken_contracts"] == {"raw/co2", "cleaned/co2"} and "raw/flights" in shown["raw"]

        # Everyone else keeps working: a run of cleaned/flights from the UI's API succeeds, the daemon
        # ticks the automation sensor, and the broken check fails with the problems.
        backfill = server.launch_backfill({"partitionNames": ["2013-01-05"], "title": "flights beside a broken contract",
                                           "assetSelection": [{"path": ["raw", "flights"]}, {"path": ["cleaned", "flights"]}]})
        assert backfill["status"] == "COMPLETED_SUCCESS" and [r["status"] for r in backfill["runs"]] == ["SUCCESS"], backfill
        assert server.materialized_partitions("cleaned/flights") == {"2013-01-05"}
        selector = {"repositoryLocationName": location, "repositoryName": repository,
                    "sensorName": automation.AUTOMATION_SENSOR}
        ticks = server.wait_until("an automation tick after the reload", lambda: [
            t for t in server.graphql(SENSOR, {"selector": selector})["sensorOrError"]["sensorState"]["ticks"]
            if t["status"] in ("SUCCESS", "SKIPPED") and t["timestamp"] > reloaded_at], 180, every=3)
        assert ticks
        # ... which runs the broken dataset's checks once: they fail with the problems.
        for key in ("raw/co2", "cleaned/co2"):
            executions = server.wait_until(f"{key}'s contract check to run", lambda: [
                e for e in server.graphql(CHECK_EXECUTIONS, {"key": {"path": key.split("/")}})["assetCheckExecutions"]
                if e["status"] in ("FAILED", "SUCCEEDED")], 180, every=3)
            (execution,) = executions
            assert execution["status"] == "FAILED" and not execution["evaluation"]["success"], execution
            assert execution["evaluation"]["severity"] == "ERROR" and problem in execution["evaluation"]["description"]

        # What the user sees on the broken dataset's page.
        person = Newcomer(browser, server, screenshots)
        try:
            page = person.page
            person.open("/assets/raw/co2")
            page.get_by_text("BROKEN CONTRACT", exact=False).first.wait_for()
            visible = page.inner_text("body")
            assert problem in visible, visible[:2000]
            shot = person.shot("7-broken-contract")
            assert shot.stat().st_size > 20_000
            person.open(f"/locations/{repository}@{location}/asset-groups/broken_contracts")
            page.get_by_text("co2", exact=True).first.wait_for()
            page.get_by_text("Never materialized").nth(1).wait_for()
            person.shot("7b-broken-contract-group")
        finally:
            person.context.close()

        contract.write_text(text)
        entry = reload(server, location)
        assert entry["locationOrLoadError"]["__typename"] == "RepositoryLocation", entry
        restored = groups(server)
        assert restored["raw/co2"][0] == "raw" and restored["cleaned/co2"][0] == "cleaned"
        assert asset_checks(server)["cleaned/co2"] == after["cleaned/co2"]
    finally:
        server.stop()
    assert not server.processes(), "make dev left processes behind"

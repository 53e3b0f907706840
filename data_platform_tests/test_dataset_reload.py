"""A contract dropped into DATA_PLATFORM_DATASETS_DIR appears in a running `make dev` after
*Reload definitions* (the GraphQL `reloadRepositoryLocation` mutation the UI's button sends); a broken
one makes the reload fail with the file and line, and the location loads again once it is fixed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from data_platform.datasets.scaffold import new_contract
from data_platform_tests.devstack import WORKSPACE, DevStack

CO2_CSV = Path(importlib.util.find_spec("statsmodels").origin).parent / "datasets" / "co2" / "co2.csv"
RELOAD = """mutation($name: String!) { reloadRepositoryLocation(repositoryLocationName: $name) { __typename
  ... on WorkspaceLocationEntry { name loadStatus locationOrLoadError { __typename
    ... on RepositoryLocation { name } ... on PythonError { message causes { message } } } }
  ... on PythonError { message } ... on RepositoryLocationNotFound { message } } }"""
NODES = "{ assetNodes { assetKey { path } assetChecksOrError { ... on AssetChecks { checks { name } } } } }"


def asset_checks(server: DevStack) -> dict[str, set[str]]:
    nodes = server.graphql(NODES)["assetNodes"]
    return {"/".join(n["assetKey"]["path"]): {c["name"] for c in (n["assetChecksOrError"] or {}).get("checks", [])}
            for n in nodes}


def reload(server: DevStack, location: str) -> dict:
    answer = server.graphql(RELOAD, {"name": location})["reloadRepositoryLocation"]
    assert answer["__typename"] == "WorkspaceLocationEntry", answer
    return answer


@pytest.mark.real_process
def test_a_new_contract_appears_in_a_running_make_dev_after_reload(tmp_path):
    contracts = tmp_path / "contracts"
    contracts.mkdir()
    server = DevStack(tmp_path)
    server.env["DATA_PLATFORM_DATASETS_DIR"] = str(contracts)
    server.start()
    try:
        location, _ = server.wait_until("the code location to load", server.loaded_location, 240)
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

        # A mistake in the file (co2, after the declared partition column day and date): the reload fails
        # and the UI shows the file and line, nothing is skipped.
        text = contract.read_text()
        contract.write_text(text.replace("logicalType: number", "logicalType: numbr"))
        line = contract.read_text().splitlines().index("        logicalType: numbr") + 1
        entry = reload(server, location)
        error = entry["locationOrLoadError"]
        shown = "\n".join([error["message"], *(cause["message"] for cause in error.get("causes") or [])])
        assert error["__typename"] == "PythonError" and "ContractError" in shown, entry
        assert f"{contract}:{line}: schema[0].properties[2].logicalType: 'numbr' is not one of" in shown, shown
        statuses = server.graphql(WORKSPACE)["workspaceOrError"]["locationEntries"]
        assert [e["locationOrLoadError"]["__typename"] for e in statuses] == ["PythonError"]

        contract.write_text(text)
        entry = reload(server, location)
        assert entry["locationOrLoadError"]["__typename"] == "RepositoryLocation", entry
        assert {"raw/co2", "cleaned/co2"} <= set(asset_checks(server))
    finally:
        server.stop()
    assert not server.processes(), "make dev left processes behind"

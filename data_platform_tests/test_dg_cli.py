"""`dg list defs` and `dg check defs` (dagster-dg-cli) work on this project: the datasets component in
data_platform/defs serves every contract, the repository's and DATA_PLATFORM_DATASETS_DIR's."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from data_platform.datasets.scaffold import new_contract
from data_platform.settings import PROJECT_ROOT

DG = str(PROJECT_ROOT / ".venv" / "bin" / "dg")
CO2_CSV = Path(importlib.util.find_spec("statsmodels").origin).parent / "datasets" / "co2" / "co2.csv"


def dg(*args: str, env: dict) -> subprocess.CompletedProcess:
    done = subprocess.run([DG, *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"dg {' '.join(args)}: exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.mark.real_process
def test_dg_lists_and_checks_the_dataset_definitions(tmp_path):
    contracts = tmp_path / "contracts"
    new_contract("co2", CO2_CSV, "date", "%Y%m%d", folder=contracts)
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATA_PLATFORM_", "DAGSTER_"))}
    env.update(DATA_PLATFORM_DATASETS_DIR=str(contracts), DATA_PLATFORM_HOME=str(tmp_path / "data"),
               DAGSTER_HOME=str(dagster_home), VIRTUAL_ENV=str(PROJECT_ROOT / ".venv"))

    listed = json.loads(dg("list", "defs", "--json", env=env).stdout)
    assets = {a["asset_key"]: a for a in listed["assets"]}
    for name in ("airlines", "airports", "flights", "planes", "weather", "co2"):
        assert {f"raw/{name}", f"cleaned/{name}"} <= set(assets), sorted(assets)
    assert assets["cleaned/co2"]["dependency_keys"] == ["raw/co2"]
    assert "co2.odcs.yaml" in assets["cleaned/co2"]["description"]
    checks = {c["key"] for c in listed["asset_checks"]}
    assert {"raw/co2:no_duplicate_keys", "cleaned/co2:key_unique", "cleaned/flights:carrier_known_in_airlines",
            "cleaned/weather:monitored_columns_drift"} <= checks
    # A schedule targets one job and a job one partitioning: co2's own dates get their own schedule.
    assert {"ingest_newest_source_partition", "ingest_newest_source_partition_co2"} <= {
        s["name"] for s in listed["schedules"]}

    checked = dg("check", "defs", env=env)
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr

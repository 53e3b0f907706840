"""Shared set-up for the feature and model tests: seeded tables built once per test session.

Building raw and cleaned January data takes seconds; every test gets its own copy of the tables
folder in its own data home, so tests stay independent while paying for the seed once.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from dagster import DagsterInstance

from data_platform.runner import materialize_days, materialize_unpartitioned
from data_platform.settings import PROJECT_ROOT
from data_platform.storage.delta import TABLES_DIR

SEED_FIRST, SEED_LAST = "2013-01-01", "2013-01-21"
UPSTREAM = ["raw/flights", "raw/weather", "cleaned/flights", "cleaned/weather"]


_SEED: dict[str, Path] = {}


@pytest.fixture(scope="session")
def seeded_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tables folder (`$DATA_PLATFORM_HOME/tables`) with raw and cleaned flights and weather for
    SEED_FIRST..SEED_LAST.

    Built once per test process even when several modules import this fixture.
    """
    if "warehouse" not in _SEED:
        _SEED["warehouse"] = _build_seed(tmp_path_factory.mktemp("seed") / "data")
    return _SEED["warehouse"]


def _build_seed(home: Path) -> Path:
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATA_PLATFORM_HOME", str(home))
        patch.setenv("DAGSTER_HOME", str(dagster_home))
        patch.delenv("DATA_PLATFORM_LANDING_DIR", raising=False)
        patch.delenv("DATA_PLATFORM_SAMPLE_FRACTION", raising=False)
        from data_platform.resources import build_resources

        with DagsterInstance.get() as instance:
            resources = build_resources()
            from dagster import AssetSelection

            from data_platform.assets.features import REFERENCE_INPUTS

            materialize_unpartitioned(AssetSelection.assets(*REFERENCE_INPUTS).without_checks(),
                                      instance=instance, resources=resources)
            materialize_days(UPSTREAM, SEED_FIRST, SEED_LAST, instance=instance, resources=resources)
    return home / TABLES_DIR


def copy_tables(tables: Path, home: Path) -> None:
    """Give `home` its own copy of a tables folder (Delta logs name their files relative to the table)."""
    shutil.copytree(tables, home / TABLES_DIR)


@pytest.fixture
def seeded_home(platform_home: Path, seeded_warehouse: Path) -> Path:
    """The test's own data home, starting from a copy of the seeded tables."""
    copy_tables(seeded_warehouse, platform_home)
    return platform_home

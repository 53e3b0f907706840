"""Shared fixtures: every test gets its own data home, Dagster home and instance on disk."""

from __future__ import annotations

import shutil
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
    """Open the test's warehouse read-only after runs: `with warehouse() as conn: ...`."""
    import duckdb

    return lambda: duckdb.connect(str(platform_home / "warehouse.duckdb"), read_only=True)

"""Resources built from the environment; tests and deployments swap them without touching assets."""

from __future__ import annotations

from dagster_duckdb import DuckDBResource

from data_platform import settings
from data_platform.sources import SourceResource


def build_resources() -> dict:
    return {
        "warehouse": DuckDBResource(database=str(settings.warehouse_path())),
        "source": SourceResource(
            landing_dir=settings.landing_dir(), sample_fraction=settings.sample_fraction()
        ),
    }

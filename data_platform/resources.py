"""Resources built from the environment; tests and deployments swap them without touching assets."""

from __future__ import annotations

from data_platform import settings
from data_platform.compute import ComputeResource
from data_platform.mlflow_store import MlflowStore
from data_platform.ingest import SourceResource
from data_platform.online.assets import OnlineStoreResource
from data_platform.storage import WarehouseResource


def build_resources() -> dict:
    return {
        "warehouse": WarehouseResource(),
        "source": SourceResource(
            landing_dir=settings.landing_dir(), sample_fraction=settings.sample_fraction()
        ),
        "mlflow": MlflowStore.from_env(),
        "online_store": OnlineStoreResource.from_env(),
        "compute": ComputeResource.from_env(),
    }

"""The MLflow tracking store and model registry as a Dagster resource (resource key `mlflow`).

Why not dagster-mlflow: its resource is the legacy function style and ends MLflow runs in a hook;
a step that fails before the hook runs leaves the MLflow run RUNNING. This resource is small,
configurable from the environment, and its `run()` context ends every run FINISHED or FAILED.

Store: SQLite at `$DATA_PLATFORM_HOME/mlflow/mlflow.db` with artifacts in
`$DATA_PLATFORM_HOME/mlflow/artifacts` (both absolute: relative locations would follow the working
directory). `DATA_PLATFORM_MLFLOW_TRACKING_URI` and `DATA_PLATFORM_MLFLOW_ARTIFACTS` point it at a
tracking server and object storage instead. A fresh SQLite store is created (schema migrations) once,
under a file lock, before any run uses it: concurrent first use of a new SQLite store fails.

`import mlflow` costs 1.5-3 s, so it happens inside the methods, never at module import.

Command line (promote or roll back by hand):
    python -m data_platform.mlflow_store show
    python -m data_platform.mlflow_store set-champion VERSION
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from pathlib import Path
from typing import Callable, Iterator, Optional

from dagster import ConfigurableResource
from pydantic import Field

from data_platform.settings import home_path

TRACKING_URI_ENV = "DATA_PLATFORM_MLFLOW_TRACKING_URI"
ARTIFACTS_ENV = "DATA_PLATFORM_MLFLOW_ARTIFACTS"
EXPERIMENT = "flight_delay"
MODEL_NAME = "flight_delay"
CHAMPION = "champion"
CHALLENGER = "challenger"
DAGSTER_RUN_TAG = "dagster.run_id"


def default_tracking_uri() -> str:
    return os.environ.get(TRACKING_URI_ENV) or f"sqlite:///{home_path('mlflow', 'mlflow.db')}"


def default_artifact_location() -> str:
    return os.environ.get(ARTIFACTS_ENV) or home_path("mlflow", "artifacts").as_uri()


def _sqlite_path(uri: str) -> Optional[Path]:
    prefix = "sqlite:///"
    return Path(uri[len(prefix):]) if uri.startswith(prefix) else None


class MlflowStore(ConfigurableResource):
    """Tracking store, experiment and registered model name used by the ML assets."""

    tracking_uri: str = Field(description="MLflow tracking (and registry) URI; SQLite by default.")
    artifact_location: str = Field(description="Absolute artifact root of the experiment (a URI).")
    experiment_name: str = Field(default=EXPERIMENT, description="Experiment the model runs go to.")
    model_name: str = Field(default=MODEL_NAME, description="Registered model name.")

    @classmethod
    def from_env(cls) -> "MlflowStore":
        return cls(tracking_uri=default_tracking_uri(), artifact_location=default_artifact_location())

    # --- store ---------------------------------------------------------------------------------

    def setup(self) -> str:
        """Point mlflow at this store, create the store and the experiment if missing; returns the
        experiment id. Safe to call from several processes at once."""
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        with self._creation_lock():
            client = self.client()
            experiment = client.get_experiment_by_name(self.experiment_name)
            if experiment is None:
                return client.create_experiment(self.experiment_name, artifact_location=self.artifact_location)
            return experiment.experiment_id

    @contextlib.contextmanager
    def _creation_lock(self) -> Iterator[None]:
        database = _sqlite_path(self.tracking_uri)
        if database is None:
            yield
            return
        database.parent.mkdir(parents=True, exist_ok=True)
        with open(database.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def client(self):
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    # --- runs ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def run(self, run_name: str, tags: dict[str, str]) -> Iterator:
        """An active MLflow run that ends FINISHED, or FAILED on any exception (interrupts too)."""
        import mlflow

        experiment_id = self.setup()
        if mlflow.active_run() is not None:  # left over by code that did not use this resource
            mlflow.end_run("FAILED")
        active = mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags)
        try:
            yield active
        except BaseException:
            mlflow.end_run("FAILED")
            raise
        mlflow.end_run("FINISHED")

    def fail_abandoned_runs(self, is_running: Callable[[str], bool]) -> list[str]:
        """Mark FAILED the RUNNING MLflow runs whose Dagster run is no longer running (a killed
        process cannot end its own run); returns their ids."""
        client = self.client()
        experiment = client.get_experiment_by_name(self.experiment_name)
        if experiment is None:
            return []
        abandoned = []
        for run in client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'"):
            dagster_run_id = run.data.tags.get(DAGSTER_RUN_TAG)
            if dagster_run_id and not is_running(dagster_run_id):
                client.set_terminated(run.info.run_id, "FAILED")
                abandoned.append(run.info.run_id)
        return abandoned

    # --- registry ------------------------------------------------------------------------------

    def model_uri(self, alias: str = CHAMPION) -> str:
        return f"models:/{self.model_name}@{alias}"

    def version_by_alias(self, alias: str = CHAMPION):
        """The model version holding `alias`, or None (no registered model or no such alias)."""
        from mlflow.exceptions import MlflowException

        self.setup()
        try:
            return self.client().get_model_version_by_alias(self.model_name, alias)
        except MlflowException:
            return None

    def set_alias(self, version: str, alias: str = CHAMPION) -> None:
        self.setup()
        self.client().set_registered_model_alias(self.model_name, alias, str(version))

    def load_model(self, alias: str = CHAMPION):
        """(scikit-learn model, model version) for `alias`; raises when no version holds it."""
        import mlflow.sklearn

        version = self.version_by_alias(alias)
        if version is None:
            raise LookupError(f"registered model {self.model_name!r} has no version with alias {alias!r}")
        return mlflow.sklearn.load_model(f"models:/{self.model_name}/{version.version}"), version


def main(argv: list[str]) -> int:
    store = MlflowStore.from_env()
    if argv[:1] == ["show"]:
        store.setup()
        client = store.client()
        for found in client.search_model_versions(f"name = '{store.model_name}'"):
            version = client.get_model_version(store.model_name, found.version)  # search omits aliases
            print(f"version {version.version}: aliases {version.aliases} run {version.run_id} "
                  f"{version.tags.get('decision', '')}")
        return 0
    if len(argv) == 2 and argv[0] == "set-champion":
        store.set_alias(argv[1])
        print(f"{store.model_name}@{CHAMPION} -> version {argv[1]}")
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

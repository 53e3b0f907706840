"""The code location: one Definitions object for the whole platform.

Datasets come from their contract files through the datasets component (its type in
data_platform/components/datasets.py, its instance in data_platform/defs/datasets/defs.yaml); the
ML graph, its checks and the automation that operates everything are Python.
"""

from dagster import Definitions, in_process_executor
from dagster.components.core.component_tree import ComponentTree

import data_platform.defs
from data_platform.assets.features import feature_assets
from data_platform.assets.ml import ml_assets
from data_platform.automation import operate
from data_platform.checks.drift import drift_checks, drift_records
from data_platform.checks.features import feature_checks
from data_platform.online.assets import online_assets, online_checks
from data_platform.resources import build_resources
from data_platform.settings import PROJECT_ROOT, landing_dir

def _components() -> tuple[list, list]:
    """Assets and checks of the datasets component (data_platform/defs/datasets: every declared dataset).

    Built at its path rather than with `load_from_defs_folder`, which also scans every installed
    package's entry points for plugin component types (about 0.3 s per process, for the UI's
    component browser this project does not use). The tree is given the defs module that
    pyproject.toml's [tool.dg.project] names, rather than finding it there: `for_project` parses the
    file twice with tomlkit (about 30 ms per process).
    """
    tree = ComponentTree(defs_module=data_platform.defs, project_root=PROJECT_ROOT, code_location_name="data_platform")
    loaded = tree.build_defs_at_path("datasets")
    return list(loaded.assets or []), list(loaded.asset_checks or [])

dataset_assets, dataset_checks = _components()

# Steps share one DuckDB writer, so step processes buy nothing locally and cost a code-location
# import each; the multiprocess or Kubernetes executor is the scale-out choice.
# Freshness policies, automation conditions, freshness checks, sensors and schedules for the graph
# as it stands (automation.operate); a landing directory is a live feed, the bundled year a replay.
operations = operate(
    [*dataset_assets, *feature_assets, *ml_assets, *online_assets, *drift_records], live_source=landing_dir() is not None
)

defs = Definitions(
    assets=operations.assets,
    asset_checks=[*operations.asset_checks, *dataset_checks, *feature_checks, *drift_checks, *online_checks],
    sensors=operations.sensors,
    schedules=operations.schedules,
    resources=build_resources(),
    executor=in_process_executor,
)

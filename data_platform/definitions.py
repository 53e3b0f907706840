"""The code location: one Definitions object for the whole platform."""

from dagster import Definitions, in_process_executor

from data_platform.assets.cleaned import cleaned_assets
from data_platform.assets.features import feature_assets
from data_platform.assets.ml import ml_assets
from data_platform.assets.raw import raw_assets
from data_platform.automation import operate
from data_platform.checks.drift import drift_checks, drift_records
from data_platform.checks.features import feature_checks
from data_platform.checks.quality import quality_checks
from data_platform.online.assets import online_assets, online_checks
from data_platform.resources import build_resources
from data_platform.settings import landing_dir

# Steps share one DuckDB writer, so step processes buy nothing locally and cost a code-location
# import each; the multiprocess or Kubernetes executor is the scale-out choice.
# Freshness policies, automation conditions, freshness checks, sensors and schedules for the graph
# as it stands (automation.operate); a landing directory is a live feed, the bundled year a replay.
operations = operate(
    [*raw_assets, *cleaned_assets, *feature_assets, *ml_assets, *online_assets, *drift_records], live_source=landing_dir() is not None
)

defs = Definitions(
    assets=operations.assets,
    asset_checks=[*operations.asset_checks, *quality_checks, *feature_checks, *drift_checks, *online_checks],
    sensors=operations.sensors,
    schedules=operations.schedules,
    resources=build_resources(),
    executor=in_process_executor,
)

"""The code location: one Definitions object for the whole platform."""

from dagster import Definitions, in_process_executor

from data_platform.assets.cleaned import cleaned_assets
from data_platform.assets.features import feature_assets
from data_platform.assets.ml import ml_assets
from data_platform.assets.raw import raw_assets
from data_platform.checks.drift import drift_checks, drift_records
from data_platform.checks.features import feature_checks
from data_platform.checks.quality import quality_checks
from data_platform.resources import build_resources

# Steps share one DuckDB writer, so step processes buy nothing locally and cost a code-location
# import each; the multiprocess or Kubernetes executor is the scale-out choice.
defs = Definitions(
    assets=[*raw_assets, *cleaned_assets, *feature_assets, *ml_assets, *drift_records],
    asset_checks=[*quality_checks, *feature_checks, *drift_checks],
    resources=build_resources(),
    executor=in_process_executor,
)

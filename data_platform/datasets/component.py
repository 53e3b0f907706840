"""The Dagster component that serves every declared dataset: one contract file, the whole workflow.

For each `*.odcs.yaml` in the repository's `datasets/` folder and in `DATA_PLATFORM_DATASETS_DIR`
it builds `raw/NAME` and `cleaned/NAME` (with `quarantine.NAME` beside it), their quality checks and,
when the contract asks for it, drift monitoring of cleaned columns. A contract that does not
validate disables its own dataset only: its assets stay in the catalog in group `broken_contracts`
with every file and line at fault, and the code server prints the problems when it loads.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass

from dagster import Definitions
from dagster.components import Component, ComponentLoadContext, Resolvable

from data_platform.assets.cleaned import cleaned_asset
from data_platform.assets.raw import raw_asset
from data_platform.checks.quality import dataset_checks
from data_platform.datasets import BrokenContract, declared
from data_platform.datasets.model import Dataset


def dataset_definitions(dataset: Dataset) -> Definitions:
    """Everything the platform does for one dataset."""
    from data_platform.checks.dataset_drift import dataset_drift

    drift_assets, drift_checks = dataset_drift(dataset)
    return Definitions(
        assets=[raw_asset(dataset), cleaned_asset(dataset), *drift_assets],
        asset_checks=[*dataset_checks(dataset), *drift_checks],
    )


@functools.lru_cache(maxsize=64)
def _announce(broken: BrokenContract) -> None:
    """Print a broken contract's problems once per process (`make dev`'s output shows the code server's)."""
    print(f"data_platform: dataset {broken.name!r} is disabled: {broken.report()}", file=sys.stderr, flush=True)


@dataclass
class DatasetsComponent(Component, Resolvable):
    """Every dataset declared as an ODCS contract file, served by the platform's generic engine."""

    def build_defs(self, context: ComponentLoadContext) -> Definitions:
        from data_platform.assets.broken_contract import broken_contract_definitions

        found = declared()
        for broken in found.broken.values():
            _announce(broken)
        return Definitions.merge(*(dataset_definitions(dataset) for dataset in found.datasets.values()),
                                 *(broken_contract_definitions(broken) for broken in found.broken.values()))

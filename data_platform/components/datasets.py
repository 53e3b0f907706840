"""The Dagster component that serves every declared dataset: one contract file, the whole workflow.

The assembly point. Its instance, `data_platform/defs/datasets/defs.yaml`, names the folders of
contract files (`contracts_dirs`, relative to the project root; `DATA_PLATFORM_DATASETS_DIR` adds
one more). For each `*.odcs.yaml` there it builds `raw/NAME` and `cleaned/NAME` (with
`quarantine.NAME` beside it) and the checks of every check kind (`data_platform/checks/kinds/`:
one module each) that applies to the contract, run by the checks framework. A contract that does
not validate disables its own dataset only: its assets stay in the catalog in group
`broken_contracts` with every file and line at fault, and the code server prints the problems when
it loads.
"""


import functools
import sys
from dataclasses import dataclass, field

from dagster import Definitions
from dagster.components import Component, ComponentLoadContext, Resolvable

from data_platform import settings
from data_platform.assets.cleaned import cleaned_asset
from data_platform.assets.raw import raw_asset
from data_platform.checks import kinds
from data_platform.checks.framework import quality_checks_for
from data_platform.datasets import BrokenContract, declared
from data_platform.datasets.model import Dataset


def dataset_definitions(dataset: Dataset) -> Definitions:
    """Everything the platform does for one dataset: its two assets and every check kind's checks."""
    assets, asset_checks = [raw_asset(dataset), cleaned_asset(dataset)], []
    by_layer: dict[str, list] = {"raw": [], "cleaned": []}
    for kind in kinds.registered():
        if not kind.applies_to(dataset):
            continue
        config = kind.config(dataset)
        for check in kind.checks(dataset, config):
            by_layer[check.layer].append(check)
        if kind.definitions is not None:
            own_assets, own_checks = kind.definitions(dataset, config)
            assets += own_assets
            asset_checks += own_checks
    asset_checks += [quality_checks_for(f"{layer}/{dataset.name}", checks) for layer, checks in by_layer.items()]
    return Definitions(assets=assets, asset_checks=asset_checks)


@functools.lru_cache(maxsize=64)
def _announce(broken: BrokenContract) -> None:
    """Print a broken contract's problems once per process (`make dev`'s output shows the code server's)."""
    print(f"data_platform: dataset {broken.name!r} is disabled: {broken.report()}", file=sys.stderr, flush=True)


@dataclass
class DatasetsComponent(Component, Resolvable):
    """Every dataset declared as an ODCS contract file, served by the platform's generic engine.

    `contracts_dirs`: folders of `*.odcs.yaml` files, relative to the project root (settings reads
    the same attribute, so the command line and the code location see the same datasets).
    """

    contracts_dirs: list[str] = field(default_factory=lambda: list(settings.DEFAULT_CONTRACTS_DIRS))

    def build_defs(self, context: ComponentLoadContext) -> Definitions:
        from data_platform.assets.broken_contract import broken_contract_definitions

        found = declared(settings.datasets_dirs(self.contracts_dirs))
        for broken in found.broken.values():
            _announce(broken)
        return Definitions.merge(*(dataset_definitions(dataset) for dataset in found.datasets.values()),
                                 *(broken_contract_definitions(broken) for broken in found.broken.values()))

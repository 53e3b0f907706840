"""Run assets of the platform's Definitions over a day range in one run (demo, benchmarks, tests)."""

from __future__ import annotations

import datetime as dt
from typing import Sequence

from dagster import AssetSelection, DagsterInstance, ExecuteInProcessResult, materialize

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


def materialize_days(
    selection: Sequence[str] | AssetSelection,
    first: dt.date | str,
    last: dt.date | str | None = None,
    *,
    instance: DagsterInstance,
    resources: dict | None = None,
    run_config: dict | None = None,
    raise_on_error: bool = True,
) -> ExecuteInProcessResult:
    """Materialize the selected daily assets (and their checks) for first..last as one run.

    `selection` takes asset key strings such as "raw/flights" or an AssetSelection.
    """
    from data_platform.definitions import defs
    from data_platform.resources import build_resources

    first, last = str(first), str(last or first)
    tags = {RANGE_START: first, RANGE_END: last}
    return _materialize(defs, selection, instance, resources or build_resources(), tags, run_config, raise_on_error)


def materialize_unpartitioned(
    selection: Sequence[str] | AssetSelection,
    *,
    instance: DagsterInstance,
    resources: dict | None = None,
    run_config: dict | None = None,
    raise_on_error: bool = True,
) -> ExecuteInProcessResult:
    from data_platform.definitions import defs
    from data_platform.resources import build_resources

    return _materialize(defs, selection, instance, resources or build_resources(), {}, run_config, raise_on_error)


def _materialize(defs, selection, instance, resources, tags, run_config, raise_on_error) -> ExecuteInProcessResult:
    if not isinstance(selection, AssetSelection):
        selection = AssetSelection.from_coercible(list(selection))
    return materialize(
        [*defs.assets, *(defs.asset_checks or [])],
        selection=selection,
        instance=instance,
        resources=resources,
        tags=tags,
        run_config=run_config,
        raise_on_error=raise_on_error,
    )

"""The webserver's workaround for Dagster 1.13.27's newest-partitions listing (see data_platform.webserver)."""

import datetime as dt

from dagster._core.definitions.partitions.context import PartitionLoadingContext
from dagster._core.definitions.partitions.definition.time_window import TimeWindowPartitionsDefinition
from dagster._core.definitions.temporal_context import TemporalContext

from data_platform.assets.features import PARTITIONS as daily_partitions


def newest(limit: int) -> list[str]:
    context = PartitionLoadingContext(
        temporal_context=TemporalContext(effective_dt=dt.datetime.now(dt.timezone.utc), last_event_id=None),
        dynamic_partitions_store=None,
    )
    return daily_partitions.get_paginated_partition_keys(context=context, limit=limit, ascending=False).results


def test_the_newest_partitions_the_plots_ask_for_are_the_last_days_of_2013(monkeypatch):
    # Unpatched, Dagster lists the 120 days before today (the plots of 2013 data are empty). When this
    # assertion fails, Dagster has fixed it: delete data_platform/webserver.py and run dagster-webserver.
    assert newest(3)[0] > "2014-01-01"

    from data_platform.webserver import clamp_descending_partition_keys_to_end_date

    # The patch replaces a Dagster method for the whole process: monkeypatch puts the original back.
    name = "get_paginated_partition_keys"
    monkeypatch.setattr(TimeWindowPartitionsDefinition, name, getattr(TimeWindowPartitionsDefinition, name))
    clamp_descending_partition_keys_to_end_date()
    keys = newest(120)
    assert keys[:3] == ["2013-12-31", "2013-12-30", "2013-12-29"]
    assert len(keys) == 120 and keys[-1] == "2013-09-03"

"""`python -m data_platform.webserver`: dagster-webserver with one Dagster 1.13.27 bug worked around.

The asset page's per-partition plots (*Metadata → Plots → Partitions*) ask for the newest 120 keys of
the partitions definition (GraphQL `partitionKeyConnection(limit: 120, ascending: false)`). For a
time-window definition Dagster pages those backwards from *now* and ignores the definition's end
date (`TimeWindowPartitionsDefinition.get_paginated_partition_keys`, descending branch), so for the
bundled 2013 partitions the UI asks for materializations of the last 120 calendar days and every
plot is empty. Here the first page of a descending listing starts at the end date when that is in
the past, which is what the ascending branch already does. `make dev` runs the webserver through
this module; `data_platform_tests/test_webserver.py` fails once Dagster fixes it (then delete this).
"""

from __future__ import annotations

import datetime as dt
import sys


def clamp_descending_partition_keys_to_end_date() -> None:
    from dagster._core.definitions.partitions.context import PartitionLoadingContext
    from dagster._core.definitions.partitions.definition.time_window import TimeWindowPartitionsDefinition
    from dagster._core.definitions.temporal_context import TemporalContext

    original = TimeWindowPartitionsDefinition.get_paginated_partition_keys
    if getattr(original, "_clamped_to_end_date", False):
        return

    def get_paginated_partition_keys(self, context, limit, ascending, cursor=None):
        end = self.end_timestamp
        if not ascending and cursor is None and end is not None and context.effective_dt.timestamp() > end:
            context = PartitionLoadingContext(
                temporal_context=TemporalContext(
                    effective_dt=dt.datetime.fromtimestamp(end, tz=dt.timezone.utc),
                    last_event_id=context.temporal_context.last_event_id,
                ),
                dynamic_partitions_store=context.dynamic_partitions_store,
            )
        return original(self, context, limit, ascending, cursor)

    get_paginated_partition_keys._clamped_to_end_date = True
    TimeWindowPartitionsDefinition.get_paginated_partition_keys = get_paginated_partition_keys


def main() -> None:
    clamp_descending_partition_keys_to_end_date()
    from dagster_webserver.cli import main as webserver_main

    sys.argv[0] = "dagster-webserver"
    webserver_main()


if __name__ == "__main__":
    main()

"""A UI backfill of the five bundled datasets (raw and cleaned) over a month, launched as the UI launches it.

Starts `make dev` in a temporary home (data_platform_tests/devstack.py), launches one backfill of
raw/* and cleaned/* for January 2013 through the GraphQL API, and prints the wall time from launch to
its end, the runs it made and how many of them ran at the same time (the most runs whose start..end
overlap).

Run: `.venv/bin/python benchmarks/bench_ui_backfill.py` (a few minutes).
"""

from __future__ import annotations

import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ("flights", "weather", "airports", "planes", "airlines")
JANUARY = [f"2013-01-{day:02d}" for day in range(1, 32)]
RUNS = """query($ids: [String!]) { runsOrError(filter: {runIds: $ids}) {
  ... on Runs { results { runId status startTime endTime assetSelection { path } } } } }"""


def most_at_once(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from data_platform_tests.devstack import DevStack

    with tempfile.TemporaryDirectory(prefix="dp-ui-backfill-") as root:
        stack = DevStack(Path(root)).start()
        try:
            stack.wait_until_up()
            keys = [{"path": [layer, name]} for layer in ("raw", "cleaned") for name in DATASETS]
            started = time.perf_counter()
            backfill = stack.launch_backfill({"partitionNames": JANUARY, "assetSelection": keys,
                                              "title": "five datasets, January"})
            seconds = time.perf_counter() - started
            runs = stack.graphql(RUNS, {"ids": [run["id"] for run in backfill["runs"]]})["runsOrError"]["results"]
        finally:
            stack.stop(signal.SIGTERM)
    spans = [(run["startTime"], run["endTime"]) for run in runs if run["startTime"] and run["endTime"]]
    print(f"backfill {backfill['status']}: {seconds:.1f} s from launch to end (polled every 3 s), "
          f"{len(runs)} runs ({sum(run['status'] == 'SUCCESS' for run in runs)} succeeded), "
          f"at most {most_at_once(spans)} at once; run seconds: "
          + ", ".join(f"{end - start:.1f}" for start, end in sorted(spans)))


if __name__ == "__main__":
    main()

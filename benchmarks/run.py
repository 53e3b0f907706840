"""Foundation benchmark: code-location import, one partition, a full-year backfill, and the same
transforms without Dagster, so the orchestration overhead shows as a ratio (the import's ratio is
against a bare `import dagster`).

Run: `make bench` (or `.venv/bin/python benchmarks/run.py`). Each figure uses a fresh temporary
data home; the Dagster instance is a temporary SQLite one, as in `dagster dev`.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DAILY = ["raw/flights", "raw/weather", "cleaned/flights", "cleaned/weather"]
YEAR = ("2013-01-01", "2013-12-31")


def import_seconds(module: str, repeats: int = 5) -> float:
    """Median wall time of a fresh interpreter importing `module`."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-W", "ignore", "-c", f"import {module}"], check=True, cwd=ROOT)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def fresh_home() -> Path:
    home = Path(tempfile.mkdtemp(prefix="dp-bench-"))
    os.environ["DATA_PLATFORM_HOME"] = str(home)
    return home


def dagster_run_seconds(first: str, last: str) -> float:
    from dagster import AssetKey, AssetSelection, DagsterInstance

    from data_platform.runner import materialize_days

    # Checks are left out so both sides do the same work.
    selection = AssetSelection.assets(*(AssetKey(key.split("/")) for key in DAILY)).without_checks()

    fresh_home()
    with tempfile.TemporaryDirectory() as dagster_home, DagsterInstance.local_temp(dagster_home) as instance:
        started = time.perf_counter()
        result = materialize_days(selection, first, last, instance=instance)
        elapsed = time.perf_counter() - started
    assert result.success
    return elapsed


def cli_partition_seconds(day: str) -> float:
    """`dagster asset materialize` for one partition: process start, code-location load and run."""
    env = {**os.environ, "DATA_PLATFORM_HOME": str(fresh_home())}
    with tempfile.TemporaryDirectory() as dagster_home:
        env["DAGSTER_HOME"] = dagster_home
        started = time.perf_counter()
        subprocess.run(
            [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m", "data_platform.definitions",
             "--select", ",".join(DAILY), "--partition", day],
            check=True, cwd=ROOT, env=env, capture_output=True,
        )
        return time.perf_counter() - started


def direct_seconds(first: str, last: str) -> float:
    """The same reads and SQL as the assets, called without Dagster."""
    import datetime as dt

    from data_platform.assets.raw import ingest
    from data_platform.cleaning import clean
    from data_platform.datasets import dataset
    from data_platform.ingest import SourceResource
    from data_platform.resources import build_resources
    from data_platform.storage import partition_stats

    fresh_home()
    start, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    source = SourceResource()
    daily = [dataset(name) for name in ("flights", "weather")]
    started = time.perf_counter()
    with build_resources()["warehouse"].get_connection() as conn:
        for table in daily:
            ingest(conn, source, table, start, end, "direct")
            partition_stats(conn, table.raw, start, end)
        for table in daily:
            clean(conn, table, start, end, "direct")
            partition_stats(conn, table.cleaned, start, end)
    return time.perf_counter() - started


def main() -> None:
    sys.path.insert(0, str(ROOT))
    # Side by side, so a busy machine slows both: the budget is 1.5x a bare `import dagster`.
    bare = import_seconds("dagster")
    rows = [("import dagster (median of 5)", bare, None),
            ("import data_platform.definitions (median of 5)", import_seconds("data_platform.definitions"), None)]
    rows[1] = (rows[1][0], rows[1][1], rows[1][1] / bare)
    cli = cli_partition_seconds("2013-06-15")
    rows.append(("CLI: one partition, raw+cleaned (new process)", cli, None))
    # Warm the bundled-source cache so both sides below read the CSVs the same number of times.
    direct_seconds("2013-01-01", "2013-01-01")
    single = dagster_run_seconds("2013-06-15", "2013-06-15")
    single_direct = direct_seconds("2013-06-15", "2013-06-15")
    rows.append(("Dagster run: one partition, raw+cleaned", single, single / single_direct))
    rows.append(("direct: one partition, raw+cleaned", single_direct, None))
    year = dagster_run_seconds(*YEAR)
    year_direct = direct_seconds(*YEAR)
    rows.append(("Dagster run: 365 partitions in one run, raw+cleaned", year, year / year_direct))
    rows.append(("direct: 365 partitions, raw+cleaned", year_direct, None))

    print(f"\n{'measure':<56}{'seconds':>10}{'ratio':>11}")
    for name, seconds, ratio in rows:
        print(f"{name:<56}{seconds:>10.2f}{(f'{ratio:.2f}x' if ratio else ''):>11}")


if __name__ == "__main__":
    main()

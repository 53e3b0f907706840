"""Headless demo: materialize a day range through every asset, then print what exists."""

from __future__ import annotations

import os
import shutil
import time

import duckdb
from dagster import AssetCheckSeverity, AssetSelection, DagsterInstance

from data_platform.assets.ml import run_config_for_range
from data_platform.runner import materialize_days
from data_platform.settings import PROJECT_ROOT, home_path, warehouse_path


def ensure_dagster_home() -> None:
    """Default DAGSTER_HOME to $DATA_PLATFORM_HOME/dagster with the project's dagster.yaml, as `make` does."""
    if os.environ.get("DAGSTER_HOME"):
        return
    dagster_home = home_path("dagster")
    dagster_home.mkdir(exist_ok=True)
    if not (dagster_home / "dagster.yaml").exists():
        shutil.copy(PROJECT_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(dagster_home)


def run_demo(first: str, last: str) -> int:
    ensure_dagster_home()
    started = time.monotonic()
    with DagsterInstance.get() as instance:
        print(f"materializing every asset for {first}..{last} in one run (Dagster home {instance.root_directory})")
        # The model trains on the first two thirds of the range and holds out the rest; a month
        # of flights supports fewer boosting rounds than the default year (300 overfit January).
        result = materialize_days(
            AssetSelection.all(), first, last, instance=instance,
            run_config=run_config_for_range(first, last, max_iter=100), raise_on_error=False,
        )
    elapsed = time.monotonic() - started
    print(f"\nrun {result.run_id}: {'succeeded' if result.success else 'FAILED'} in {elapsed:.1f} s\n")
    print(_table_summary())
    print()
    print(_check_summary(result))
    print(f"\nwarehouse: {warehouse_path()}")
    print("open the UI with `make dev` (http://127.0.0.1:3000) to see the graph, metadata and checks")
    return 0 if result.success else 1


def _table_summary() -> str:
    lines = [f"{'table':<28}{'rows':>10}{'days':>7}"]
    with duckdb.connect(str(warehouse_path()), read_only=True) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema NOT IN ('main', 'information_schema') ORDER BY 1, 2"
        ).fetchall()
        for schema, name in tables:
            columns = {row[0] for row in conn.execute(f"DESCRIBE {schema}.{name}").fetchall()}
            days = "count(DISTINCT day)" if "day" in columns else "NULL"
            rows, day_count = conn.execute(f"SELECT count(*), {days} FROM {schema}.{name}").fetchone()
            lines.append(f"{schema + '.' + name:<28}{rows:>10,}{day_count if day_count is not None else '-':>7}")
    return "\n".join(lines)


def _check_summary(result) -> str:
    evaluations = result.get_asset_check_evaluations()
    if not evaluations:
        return "checks: none evaluated"
    passed = [e for e in evaluations if e.passed]
    failed = [e for e in evaluations if not e.passed]
    lines = [f"checks: {len(passed)} passed, {len(failed)} failed"]
    for evaluation in failed:
        severity = "ERROR" if evaluation.severity == AssetCheckSeverity.ERROR else "WARN"
        lines.append(f"  {severity:<5} {evaluation.asset_key.to_user_string()} {evaluation.check_name}")
    return "\n".join(lines)

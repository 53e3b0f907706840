"""Benchmark of the ML half: features for the whole year in one run, training, scoring per day.

    .venv/bin/python benchmarks/bench_ml.py             # in a temporary data home (removed after)
    .venv/bin/python benchmarks/bench_ml.py --keep DIR  # in DIR (kept: open MLflow/Dagster on it)

Builds raw and cleaned data for the year first (timed, not part of the table), then times real
Dagster runs of each asset without its checks: features/flight_features over 2013-01-01..2013-12-31
in one run; ml/delay_model with its default windows (train Jan-Sep, holdout Nov-Dec);
ml/delay_predictions for one day, and for the 31 days of December in one run; model_performance
for December; then the feature checks (contract, key, drift) over the year. Prints a table and the
model's holdout metrics.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _timed(label: str, rows: list, action, per: int = 1, note: str = ""):
    started = time.perf_counter()
    result = action()
    seconds = time.perf_counter() - started
    rows.append((label, seconds, seconds / per, note))
    print(f"  {label}: {seconds:.1f} s", flush=True)
    return result


def _has_cleaned_year() -> bool:
    """Whether the data home (DATA_PLATFORM_HOME) already holds the cleaned year and planes."""
    import duckdb

    from data_platform import storage

    with storage.connection() as conn:
        try:
            days = conn.execute("SELECT count(DISTINCT day) FROM cleaned.flights").fetchone()[0]
            conn.execute("SELECT count(*) FROM cleaned.planes").fetchone()
        except duckdb.Error:
            return False
    return days == 365


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", metavar="DIR", help="data home to use and keep (default: a temporary one)")
    args = parser.parse_args(argv)

    home = Path(args.keep).resolve() if args.keep else Path(tempfile.mkdtemp(prefix="bench_ml_"))
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    os.environ["DATA_PLATFORM_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    os.environ.pop("DATA_PLATFORM_LANDING_DIR", None)
    os.environ.pop("DATA_PLATFORM_SAMPLE_FRACTION", None)

    from dagster import AssetSelection, DagsterInstance, materialize

    from data_platform.assets.features import FEATURES_KEY, REFERENCE_INPUTS
    from data_platform.assets.ml import MODEL_KEY, PERFORMANCE_KEY, PREDICTIONS_KEY
    from data_platform.definitions import defs
    from data_platform.resources import build_resources
    from data_platform.runner import materialize_days, materialize_unpartitioned

    def only(key):  # the asset without its checks: what the computation itself costs
        return AssetSelection.assets(key).without_checks()

    rows: list[tuple[str, float, float, str]] = []
    try:
        with DagsterInstance.get() as instance:
            resources = build_resources()
            print(f"data home {home}\nset-up (not in the table):", flush=True)
            materialize_unpartitioned(AssetSelection.assets(*REFERENCE_INPUTS).without_checks(),
                                      instance=instance, resources=resources)
            if _has_cleaned_year():
                print("  raw + cleaned already there (kept data home), not rebuilt")
            else:
                _timed("raw + cleaned, whole year", [], lambda: (
                    materialize_days(["raw/flights", "raw/weather", "cleaned/flights", "cleaned/weather"],
                                     "2013-01-01", "2013-12-31", instance=instance, resources=resources),
                ))
            print("measured:", flush=True)
            _timed("features, 365 days in one run", rows, lambda: materialize_days(
                only(FEATURES_KEY), "2013-01-01", "2013-12-31", instance=instance, resources=resources),
                per=365, note="asset only; per day = run / 365")
            trained = _timed("ml/delay_model run (default windows)", rows, lambda: materialize(
                [*defs.assets, *(defs.asset_checks or [])], selection=AssetSelection.assets(MODEL_KEY),
                instance=instance, resources=resources), note="snapshots + fit + MLflow logging")
            [event] = [e for e in trained.get_asset_materialization_events() if e.asset_key == MODEL_KEY]
            metadata = {k: v.value for k, v in event.event_specific_data.materialization.metadata.items()}
            rows.append(("  of which fit (scikit-learn)", metadata["training_seconds"], metadata["training_seconds"],
                         f"{metadata['training_rows']:,} rows"))
            _timed("predictions, 1 day in one run", rows, lambda: materialize_days(
                only(PREDICTIONS_KEY), "2013-12-01", instance=instance, resources=resources),
                note="includes loading the champion")
            _timed("predictions, 31 days in one run", rows, lambda: materialize_days(
                only(PREDICTIONS_KEY), "2013-12-01", "2013-12-31", instance=instance, resources=resources),
                per=31, note="per day = run / 31")
            _timed("performance, 31 days in one run", rows, lambda: materialize_days(
                only(PERFORMANCE_KEY), "2013-12-01", "2013-12-31", instance=instance, resources=resources),
                per=31, note="per day = run / 31")
            _timed("feature checks, 365 days in one run", rows, lambda: materialize_days(
                AssetSelection.checks_for_assets(FEATURES_KEY), "2013-01-01", "2013-12-31", instance=instance,
                resources=resources, raise_on_error=False), per=365, note="contract, key and drift checks")
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)

    print(f"\n{'step':<40}{'run s':>9}{'per unit s':>12}  note")
    for label, seconds, per_unit, note in rows:
        print(f"{label:<40}{seconds:>9.2f}{per_unit:>12.3f}  {note}")
    print(
        f"\nholdout {metadata['windows']}: ROC AUC {metadata['holdout_roc_auc']:.4f}, PR AUC {metadata['holdout_pr_auc']:.4f}, "
        f"log loss {metadata['holdout_log_loss']:.4f} (base rate {metadata['baseline_log_loss']:.4f}), "
        f"Brier {metadata['holdout_brier']:.4f} (base rate {metadata['baseline_brier']:.4f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

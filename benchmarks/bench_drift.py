"""Drift monitoring benchmark: a year's backfill, one warm partition, agreement with the stock preset.

    .venv/bin/python benchmarks/bench_drift.py [--home DIR] [--agreement-every N]

1. Data: raw, cleaned and features for all of 2013 in one run, in a temporary DATA_PLATFORM_HOME
   (or `--home DIR`, reused when it already has features for the year).
2. Backfill: one Dagster run of the `feature_drift` check over the 365 partitions, in a process that
   has not imported Evidently yet (so import, reference sampling and calibration are included).
   Target: under 5 minutes.
3. Warm: the same check for one partition, run again in the same process. Target: under 1 s.
4. Agreement: for every N-th partition, Evidently's stock `DataDriftPreset` on the *full* reference
   with the same per-column methods and thresholds; each column's drift decision is compared with
   the check's (sampled reference, one computation per column). Target: >= 95 % of
   column-partitions agree.

The reference is the window 2013-01-01..2013-09-30 of feature partitions: the training window
`ml/delay_model` uses by default, i.e. the rows its training snapshot holds (set with
DATA_PLATFORM_DRIFT_REFERENCE, so no model has to be trained first). `--reference
2013-01-01..2013-01-31` shows how a January-trained champion would see the year.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

REFERENCE = ("2013-01-01", "2013-09-30")
YEAR = ("2013-01-01", "2013-12-31")
WARM_DAY = "2013-07-10"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", help="DATA_PLATFORM_HOME to use (kept); default: a temporary one")
    parser.add_argument("--agreement-every", type=int, default=14,
                        help="compare every N-th partition with the stock preset (each takes ~13 s); default 14, 0 skips")
    parser.add_argument("--reference", default="..".join(REFERENCE),
                        help="reference window FIRST..LAST of feature partitions; default the model's training window")
    args = parser.parse_args()
    home = Path(args.home).resolve() if args.home else Path(tempfile.mkdtemp(prefix="bench_drift_"))
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    project = Path(__file__).resolve().parent.parent
    shutil.copy(project / "dagster.yaml", home / "dagster" / "dagster.yaml")
    os.environ.update({"DATA_PLATFORM_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"),
                       "DATA_PLATFORM_DRIFT_REFERENCE": args.reference})
    for name in ("DATA_PLATFORM_LANDING_DIR", "DATA_PLATFORM_SAMPLE_FRACTION", "DATA_PLATFORM_DRIFT_CONFIG"):
        os.environ.pop(name, None)
    sys.path.insert(0, str(project))
    warnings.simplefilter("ignore")
    try:
        return run(home, args.agreement_every, tuple(args.reference.split("..")))
    finally:
        if not args.home:
            shutil.rmtree(home, ignore_errors=True)


def run(home: Path, every: int, reference: tuple[str, str]) -> int:
    from dagster import AssetKey, AssetSelection, DagsterInstance

    from data_platform.checks.drift import FEATURE_DRIFT_CHECK
    from data_platform.runner import materialize_days, materialize_unpartitioned

    print(f"data home {home}; reference = feature partitions {reference[0]}..{reference[1]}")
    with DagsterInstance.get() as instance:
        started = time.monotonic()
        if not _has_year_of_features():
            keys = ["raw/flights", "raw/weather", "cleaned/flights", "cleaned/weather", "features/flight_features"]
            upstream = AssetSelection.assets(*(AssetKey(k.split("/")) for k in keys)).without_checks()
            from data_platform.assets.features import REFERENCE_INPUTS

            materialize_unpartitioned(AssetSelection.assets(*REFERENCE_INPUTS).without_checks(), instance=instance)
            materialize_days(upstream, *YEAR, instance=instance)
            print(f"features for 2013 materialized in {time.monotonic() - started:.1f} s (one run, checks excluded)")

        assert "evidently" not in sys.modules
        check = AssetSelection.checks(FEATURE_DRIFT_CHECK)
        started = time.monotonic()
        backfill = materialize_days(check, *YEAR, instance=instance)
        backfill_seconds = time.monotonic() - started
        evaluation = _evaluation(backfill)
        meta = {name: value.value for name, value in evaluation.metadata.items()}
        print(f"\n1) full-year drift backfill, one run (cold process): {backfill_seconds:.1f} s "
              f"(check step {_step_seconds(backfill):.1f} s) for {meta['checked_partitions']} partitions "
              f"-> {'PASS' if backfill_seconds < 300 else 'MISSED'} (target < 300 s)")
        print(f"   {meta['failed_partitions']} partitions drift; worst {meta.get('worst_partition')} "
              f"share {meta.get('drift_share')}; reference {meta['reference_rows']:,} rows sampled to "
              f"{meta['reference_sample_rows']:,}")
        _print_monthly(meta["per_partition"])

        steps, runs = [], []
        for _ in range(3):
            started = time.monotonic()
            single = materialize_days(check, WARM_DAY, instance=instance)
            runs.append(time.monotonic() - started)
            steps.append(_step_seconds(single))
        print(f"\n2) one partition ({WARM_DAY}), warm: check step {statistics.median(steps):.2f} s median of "
              f"{[round(s, 2) for s in steps]} -> {'PASS' if statistics.median(steps) < 1 else 'MISSED'} (target < 1 s); "
              f"whole Dagster run {statistics.median(runs):.2f} s")

    if every:
        agreement(every, reference)
    return 0


def _has_year_of_features() -> bool:
    """Whether the data home (DATA_PLATFORM_HOME) already holds a year of features."""
    import duckdb

    from data_platform import storage

    with storage.connection() as conn:
        try:
            return conn.execute("SELECT count(DISTINCT day) FROM features.flight_features").fetchone()[0] == 365
        except duckdb.Error:
            return False


def _evaluation(result):
    [evaluation] = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    return evaluation


def _step_seconds(result) -> float:
    [step] = [e for e in result.all_events if e.event_type_value == "STEP_SUCCESS"]
    return step.event_specific_data.duration_ms / 1000


def _print_monthly(per_partition) -> None:
    import pandas as pd

    frame = pd.DataFrame([record.data for record in per_partition.records])
    frame["month"] = frame["partition"].str[:7]
    summary = frame.groupby("month").agg(mean_share=("drift_share", "mean"), max_share=("drift_share", "max"),
                                         drifting_days=("severity", lambda s: int((s != "PASS").sum())))
    print("   drift share by month:\n" + summary.round(3).to_string().replace("\n", "\n   "))


def agreement(every: int, reference: tuple[str, str]) -> None:
    """Per-column decisions of the check (stored snapshots) against the stock preset on the full reference."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    from data_platform import drift, drift_evidently, storage, training_set
    from data_platform.checks.drift import feature_policy

    policy = drift.configured(feature_policy())
    store = drift.ReportStore()
    days = [dt.date(2013, 1, 1) + dt.timedelta(days=i) for i in range(0, 365, every)]
    with storage.connection() as conn:
        full = drift.typed(training_set.read_feature_window(conn, *(dt.date.fromisoformat(d) for d in reference)), policy)
        current = drift.typed(training_set.read_feature_window(conn, dt.date(2013, 1, 1), dt.date(2013, 12, 31)), policy)
    by_day = dict(tuple(current.groupby("day")))
    counts = {"check": Agreement(), "stock": Agreement()}
    seconds = []
    for day in days:
        snapshot = drift_evidently.load_snapshot(str(store.snapshot_path(policy.name, day)))
        ours = drift_evidently.column_scores(snapshot)
        thresholds = {r.metric_value_location.metric.params["column"]: r.metric_value_location.metric.params["threshold"]
                      for r in snapshot.metric_results.values()
                      if r.metric_value_location.metric.params.get("type", "").endswith(":ColumnDriftScore")}
        columns = [c for c in policy.monitored if c.column in ours]
        numerical = [c.column for c in columns if c.kind == drift.NUMERICAL]
        categorical = [c.column for c in columns if c.kind == drift.CATEGORICAL]
        definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
        names = numerical + categorical
        preset = DataDriftPreset(
            columns=names,
            per_column_method={c.column: c.method for c in columns},
            per_column_threshold={name: thresholds[name] for name in names},
        )
        started = time.monotonic()
        stock = Report([preset], include_tests=True).run(
            current_data=Dataset.from_pandas(by_day[day][names], data_definition=definition),
            reference_data=Dataset.from_pandas(full[names], data_definition=definition),
        )
        seconds.append(time.monotonic() - started)
        verdicts = {test["name"].removeprefix("Value Drift for column "): str(test["status"]).endswith("FAIL")
                    for test in stock.dict()["tests"] if test["name"].startswith("Value Drift for column ")}
        stock_scores = {m["config"]["column"]: float(m["value"]) for m in stock.dict()["metrics"]
                        if m["config"].get("type", "").endswith(":ValueDrift")}
        for name in names:
            assert verdicts[name] == (stock_scores[name] >= thresholds[name])  # the preset's own test
            for level, threshold in (("check", thresholds[name]), ("stock", drift.DEFAULT_FLOOR)):
                counts[level].add(ours[name] >= threshold, stock_scores[name] >= threshold)
    print(f"\n3) agreement with the stock DataDriftPreset on the full reference ({len(full):,} rows), "
          f"{len(days)} partitions (every {every}th day), stock preset {statistics.median(seconds):.1f} s per "
          f"partition (median):")
    share = counts["check"].share
    print(f"   at the check's thresholds: {counts['check']} -> {'PASS' if share >= 0.95 else 'MISSED'} (target >= 95 %)")
    print(f"   at Evidently's default threshold 0.1 for every column (many more decisions near the line): "
          f"{counts['stock']}")


class Agreement:
    def __init__(self):
        self.agree = self.total = self.both = self.only_check = self.only_stock = 0

    def add(self, check_drifted: bool, stock_drifted: bool) -> None:
        self.total += 1
        self.agree += check_drifted == stock_drifted
        self.both += check_drifted and stock_drifted
        self.only_check += check_drifted and not stock_drifted
        self.only_stock += stock_drifted and not check_drifted

    @property
    def share(self) -> float:
        return self.agree / self.total

    def __str__(self) -> str:
        return (f"{self.agree}/{self.total} column-partitions agree = {self.share:.2%} (drifted in both "
                f"{self.both}, only in the check {self.only_check}, only in the stock preset {self.only_stock})")


if __name__ == "__main__":
    sys.exit(main())

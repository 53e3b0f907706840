"""Ten times the data, end to end, in process and on a 2-worker Dask cluster.

    .venv/bin/python benchmarks/bench_scale.py                  # 1x and 10x, in process and cluster
    .venv/bin/python benchmarks/bench_scale.py --scales 1 --configs in-process   # a quick look
    .venv/bin/python benchmarks/bench_scale.py --stretch        # also 100x raw..features in process

Writes a landing folder (`DATA_PLATFORM_LANDING_DIR` layout) per scale: the bundled 2013 flights
year repeated N times, each copy under its own carrier codes (bench_ingest's generator: the
contract's flight numbers 1..9999 leave no room for copies of their own), as daily
`flights/<YYYY-MM-DD>.csv`, the bundled weather as daily files (1x: it is the lookup side), and the
reference tables `airports.csv`, `planes.csv` and `airlines.csv` (with the copies' carriers). Then, per scale and configuration
(in process; `cluster`: a LocalCluster of 2 single-threaded worker processes that this script starts
and hands to the platform as `DATA_PLATFORM_DASK_SCHEDULER=tcp://...`), it runs real Dagster runs of
the assets without their checks, each stage in a fresh process of its own so that its peak memory
(VmHWM) is the stage's: reference tables, raw and cleaned flights+weather for the year, features
for the year, ml/delay_model (train 2013-01-01..09-30, holdout 11-01..12-31, as the defaults on a
full year) and ml/delay_predictions for December. On the cluster, the workers' peak memory is reset
before each stage (/proc/self/clear_refs) and read after it. The model fit and the predictions run in the step
process on every setting.

A month row compares January's raw -> cleaned -> features in process and on the cluster: time, and
the per-day content hashes (`storage.partition_stats`) of every table written, which must be equal.

Budgets: 10x over 1x in process at most 10x the time per stage, no process above 4 GiB; the cluster
within 2x of in process for the month.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_ingest import bundled_file, repeated  # noqa: E402  (the shared generator)

YEAR = ("2013-01-01", "2013-12-31")
MONTH = ("2013-01-01", "2013-01-31")
DECEMBER = ("2013-12-01", "2013-12-31")
WINDOWS = {"train_first": "2013-01-01", "train_last": "2013-09-30",
           "holdout_first": "2013-11-01", "holdout_last": "2013-12-31"}
PIPELINE = ["reference", "raw", "cleaned", "features", "checks", "model", "predictions"]
DATA_STAGES = ["reference", "raw", "cleaned", "features"]
DAILY_TABLES = {"raw": ["raw/flights", "raw/weather"], "cleaned": ["cleaned/flights", "cleaned/weather"]}
GIB = 2 ** 30
MEMORY_BUDGET = 4 * GIB


# --- the landing folder -------------------------------------------------------------------------

def write_landing(folder: Path, copies: int) -> int:
    """A landing folder with `copies` x the bundled flights, 1x weather and the reference tables;
    returns the flights rows written."""
    import duckdb

    day = "make_date(CAST(year AS INTEGER), CAST(month AS INTEGER), CAST(day AS INTEGER))"
    flights, params = repeated(copies, "flights")
    weather = "SELECT * FROM read_csv(?, all_varchar = true, header = true)"
    folder.mkdir(parents=True)
    with duckdb.connect() as conn:
        for name, query, query_params in (("flights", flights, params),
                                          ("weather", weather, [str(bundled_file("weather"))])):
            _write_daily(conn, folder, name, f"SELECT *, {day} AS _day FROM ({query})", query_params)
        for name in ("airports", "planes"):
            conn.execute(f"COPY ({weather}) TO '{folder / name}.csv' (HEADER)", [str(bundled_file(name))])
        airlines, params = repeated(copies, "airlines")
        conn.execute(f"COPY ({airlines}) TO '{folder / 'airlines'}.csv' (HEADER)", params)
        return conn.execute(f"SELECT count(*) FROM read_csv('{folder}/flights/*.csv', all_varchar = true)").fetchone()[0]


def _write_daily(conn, folder: Path, name: str, query: str, params: list) -> None:
    """One pass over the rows: DuckDB writes a file per day (hive folders), renamed to <name>/<day>.csv."""
    from data_platform.partitions import days_between

    staging, target = folder / f".{name}-by-day", folder / name
    conn.execute(f"COPY ({query}) TO '{staging}' (FORMAT csv, HEADER, PARTITION_BY (_day))", params)
    target.mkdir()
    for part in sorted(staging.iterdir()):
        [file] = list(part.iterdir())
        file.rename(target / f"{part.name.split('=', 1)[1]}.csv")
    shutil.rmtree(staging)
    # A day the source has no rows for (the bundled weather ends 2013-12-30) lands as a header-only file.
    header = (target / "2013-01-01.csv").open().readline()
    for day in days_between(*(dt.date.fromisoformat(d) for d in YEAR)):
        if not (target / f"{day}.csv").exists():
            (target / f"{day}.csv").write_text(header)


# --- one stage, in its own process --------------------------------------------------------------

def run_stage(stage: str, first: str, last: str) -> None:
    """In a fresh process: one Dagster run of the stage's assets (no checks); prints seconds and peak memory."""
    from dagster import AssetKey, AssetSelection, DagsterInstance

    from data_platform.assets.features import FEATURES_KEY, REFERENCE_INPUTS
    from data_platform.assets.ml import MODEL_KEY, MODEL_OP, PREDICTIONS_KEY
    from data_platform.resources import build_resources
    from data_platform.runner import materialize_days, materialize_unpartitioned

    def only(*keys):
        return AssetSelection.assets(*(AssetKey(k.split("/")) if isinstance(k, str) else k for k in keys)).without_checks()

    with DagsterInstance.get() as instance:
        resources = build_resources()
        started = time.perf_counter()
        if stage == "reference":
            materialize_unpartitioned(only(*REFERENCE_INPUTS), instance=instance, resources=resources)
        elif stage in DAILY_TABLES:
            materialize_days(only(*DAILY_TABLES[stage]), first, last, instance=instance, resources=resources)
        elif stage == "features":
            materialize_days(only(FEATURES_KEY), first, last, instance=instance, resources=resources)
        elif stage == "checks":  # every check of the daily tables over the range, in the step process
            checked = [AssetKey(k.split("/")) for tables in DAILY_TABLES.values() for k in tables] + [FEATURES_KEY]
            materialize_days(AssetSelection.checks_for_assets(*checked), first, last, instance=instance,
                             resources=resources, raise_on_error=False)
        elif stage == "model":
            materialize_unpartitioned(only(MODEL_KEY), instance=instance, resources=resources,
                                      run_config={"ops": {MODEL_OP: {"config": WINDOWS}}})
        elif stage == "predictions":
            materialize_days(only(PREDICTIONS_KEY), *DECEMBER, instance=instance, resources=resources)
        else:
            raise ValueError(f"unknown stage {stage!r}")
        seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "peak_bytes": peak_memory()}))


def print_hashes(first: str, last: str) -> None:
    """In a fresh process: the per-day rows and content hash of every table January's stages write."""
    from data_platform import storage
    from data_platform.assets.features import CONTRACT
    from data_platform.datasets import dataset

    first_day, last_day = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    contracts = [dataset(n).raw for n in ("flights", "weather")] + [dataset(n).cleaned for n in ("flights", "weather")]
    with storage.connection() as conn:
        print(json.dumps({c.name: {str(day): [s.rows, s.data_version]
                                   for day, s in storage.partition_stats(conn, c, first_day, last_day).items()}
                          for c in [*contracts, CONTRACT]}))


# --- the driver ---------------------------------------------------------------------------------

def peak_memory() -> int:
    """This process's peak resident memory in bytes (Linux VmHWM). Not ru_maxrss: a process started by
    fork+exec inherits its parent's peak in ru_maxrss (this driver's DuckDB landing writes)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status: peak memory needs Linux")


def _reset_peak() -> None:
    """Linux: start this process's peak resident memory again from its current size."""
    Path("/proc/self/clear_refs").write_text("5")


def _child(args: list[str], env: dict) -> tuple[dict | None, str]:
    done = subprocess.run([sys.executable, __file__, *args], env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        return None, f"exit {done.returncode}: {lines[-1] if lines else '(no output)'}"
    return json.loads(done.stdout.strip().splitlines()[-1]), ""


def run_pipeline(home: Path, landing: Path, stages: list[str], span: tuple[str, str], client) -> dict:
    """The stages one after another, each in a fresh process; the workers' peak memory reset per stage."""
    (home / "dagster").mkdir(parents=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster" / "dagster.yaml")
    env = {**os.environ, "DATA_PLATFORM_HOME": str(home), "DATA_PLATFORM_LANDING_DIR": str(landing),
           "DAGSTER_HOME": str(home / "dagster")}
    env.pop("DATA_PLATFORM_SAMPLE_FRACTION", None)
    env.pop("DATA_PLATFORM_DASK_SCHEDULER", None)
    if client is not None:
        env["DATA_PLATFORM_DASK_SCHEDULER"] = client.scheduler.address
    results = {}
    for stage in stages:
        if client is not None:
            client.run(_reset_peak)
        figures, error = _child(["--stage", stage, *span], env)
        if figures is None:
            results[stage] = {"error": error}
            print(f"  {stage}: FAILED {error}", flush=True)
            break
        if client is not None:
            figures["worker_peak_bytes"] = max(client.run(peak_memory).values())
        results[stage] = figures
        print(f"  {stage}: {figures['seconds']:.1f} s, step {figures['peak_bytes'] / GIB:.2f} GiB"
              + (f", worker {figures['worker_peak_bytes'] / GIB:.2f} GiB" if client is not None else ""), flush=True)
    return results


def _gib(value) -> str:
    return f"{value / GIB:.2f}" if value else "-"


def print_table(results: dict, scales: list[int], configs: list[str]) -> None:
    base = scales[0]
    head = f"{'stage':<12}{'config':<12}"
    for scale in scales:
        head += f"{f'{scale}x s':>9}{'step GiB':>9}{'wkr GiB':>9}"
    for scale in scales[1:]:
        head += f"{f'{scale}x/{base}x time':>15}{'step mem':>9}"
    print("\n" + head)
    for stage in PIPELINE:
        for config in configs:
            runs = [results.get((scale, config), {}).get(stage) for scale in scales]
            if not any(runs):
                continue
            line = f"{stage:<12}{config:<12}"
            for run in runs:
                if not run:
                    line += f"{'':>27}"
                elif "error" in run:
                    line += f"{'FAILED':>27}"
                else:
                    line += f"{run['seconds']:>9.1f}{_gib(run['peak_bytes']):>9}{_gib(run.get('worker_peak_bytes')):>9}"
            for run in runs[1:]:
                if runs[0] and run and "error" not in run and "error" not in runs[0]:
                    line += (f"{run['seconds'] / runs[0]['seconds']:>14.2f}x"
                             f"{run['peak_bytes'] / runs[0]['peak_bytes']:>8.2f}x")
            print(line)
    for (scale, config), stages in results.items():
        for stage, run in stages.items():
            if "error" in run:
                print(f"{scale}x {config} {stage} failed: {run['error']}")


def print_budgets(results: dict, scales: list[int]) -> None:
    print("\nbudgets:")
    if 1 in scales and 10 in scales:
        one, ten = results.get((1, "in-process"), {}), results.get((10, "in-process"), {})
        for stage in PIPELINE:
            if stage in one and stage in ten and "error" not in one[stage] and "error" not in ten[stage]:
                ratio = ten[stage]["seconds"] / one[stage]["seconds"]
                print(f"  {stage:<12} 10x/1x time in process {ratio:5.2f}x (budget 10x): {'ok' if ratio <= 10 else 'OVER'}")
    peaks = [(max(run["peak_bytes"], run.get("worker_peak_bytes", 0)), f"{scale}x {config} {stage}")
             for (scale, config), stages in results.items() for stage, run in stages.items() if "error" not in run]
    if peaks:
        peak, where = max(peaks)
        print(f"  largest process: {peak / GIB:.2f} GiB ({where}; budget 4 GiB): {'ok' if peak < MEMORY_BUDGET else 'OVER'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="1,10", help="copies of the flights year, comma separated (default 1,10)")
    parser.add_argument("--configs", default="in-process,cluster", help="in-process and/or cluster")
    parser.add_argument("--no-month", action="store_true", help="skip the January in process vs cluster row")
    parser.add_argument("--stretch", action="store_true", help="also 100x raw -> cleaned -> features in process (the generator's carrier codes are valid "
                        "for 10 copies: cleaning quarantines most of the 100x rows; see README, Ten times the data)")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (default: a temporary folder)")
    args = parser.parse_args(argv)
    scales = [int(s) for s in args.scales.split(",")]
    configs = [c for c in args.configs.split(",") if c]
    if unknown := set(configs) - {"in-process", "cluster"}:
        parser.error(f"unknown configs {sorted(unknown)}: expected in-process and/or cluster")

    folder = Path(args.keep).resolve() if args.keep else Path(tempfile.mkdtemp(prefix="dp-bench-scale-"))
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["DATA_PLATFORM_HOME"] = str(folder / "cache-home")  # where the zipped sources are extracted
    cluster = client = None
    try:
        landings = {}
        for scale in scales + ([100] if args.stretch and 100 not in scales else []):
            started = time.perf_counter()
            rows = write_landing(folder / f"landing-{scale}x", scale)
            landings[scale] = folder / f"landing-{scale}x"
            print(f"landing {scale}x: {rows:,} flights in {time.perf_counter() - started:.1f} s", flush=True)
        if "cluster" in configs:
            from distributed import Client, LocalCluster

            cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                   dashboard_address="127.0.0.1:0")
            client = Client(cluster)
            print(f"cluster: 2 workers at {cluster.scheduler_address}", flush=True)
        results, month = {}, {}
        for scale in scales:
            for config in configs:
                print(f"{scale}x {config}:", flush=True)
                results[(scale, config)] = run_pipeline(folder / f"home-{scale}x-{config}", landings[scale], PIPELINE, YEAR,
                                                        client if config == "cluster" else None)
            if not args.no_month and len(configs) == 2:
                month[scale] = month_row(folder, scale, landings[scale], client)
        if args.stretch:
            print("100x in-process (stretch):", flush=True)
            results[(100, "in-process")] = run_pipeline(folder / "home-100x-in-process", landings[100], DATA_STAGES, YEAR, None)
    finally:
        if client is not None:
            client.close()
            cluster.close()
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)

    print_table(results, scales + ([100] if args.stretch and 100 not in scales else []), configs)
    for scale, (local, spread, identical) in month.items():
        print(f"\nJanuary raw -> cleaned -> features at {scale}x: in process {local:.1f} s, cluster {spread:.1f} s "
              f"({spread / local:.2f}x; budget 2x: {'ok' if spread <= 2 * local else 'OVER'}); "
              f"per-day content hashes {'identical' if identical else 'DIFFERENT'}")
    print_budgets(results, scales)
    return 0


def month_row(folder: Path, scale: int, landing: Path, client) -> tuple[float, float, bool]:
    """January raw -> cleaned -> features in process and on the cluster: seconds of each, equal hashes."""
    seconds, hashes = {}, {}
    for config, used in (("in-process", None), ("cluster", client)):
        print(f"{scale}x January {config}:", flush=True)
        home = folder / f"home-{scale}x-month-{config}"
        stages = run_pipeline(home, landing, DATA_STAGES, MONTH, used)
        if any("error" in run for run in stages.values()):
            raise SystemExit(f"January at {scale}x {config} failed: {stages}")
        seconds[config] = sum(run["seconds"] for stage, run in stages.items() if stage != "reference")
        env = {**os.environ, "DATA_PLATFORM_HOME": str(home), "DATA_PLATFORM_LANDING_DIR": str(landing)}
        hashes[config], error = _child(["--hashes", *MONTH], env)
        if error:
            raise SystemExit(f"hashes of January at {scale}x {config}: {error}")
    return seconds["in-process"], seconds["cluster"], hashes["in-process"] == hashes["cluster"]


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--stage":
        run_stage(*sys.argv[2:])
    elif len(sys.argv) == 4 and sys.argv[1] == "--hashes":
        print_hashes(*sys.argv[2:])
    else:
        sys.exit(main())

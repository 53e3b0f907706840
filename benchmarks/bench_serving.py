"""Benchmark of online scoring: HTTP end to end against the real service, online store loaded for 2013.

    .venv/bin/python benchmarks/bench_serving.py               # in a temporary data home (removed after)
    .venv/bin/python benchmarks/bench_serving.py --keep DIR    # in DIR, kept and reused on the next run
    .venv/bin/python benchmarks/bench_serving.py --keep DIR --no-redis
    .venv/bin/python benchmarks/bench_serving.py --keep DIR --redis-url redis://127.0.0.1:6379/0   # loaded once

Builds what serving needs (timed, not part of the latency table): raw and cleaned data and features for
the whole year, the delay model on its default windows (train Jan-Sep, holdout Nov-Dec, 300 iterations),
batch predictions for December, and `ml/online_features` for the 365 days in one run, into the SQLite
store and (unless --no-redis) into a throwaway `redis-server` on loopback.

Then, for each store, it starts `python -m data_platform serve` as its own process and measures over
HTTP with keep-alive connections, on flights drawn across the year (a different flight per request):
single /predict requests one at a time (p50, p99), /predict/batch of 100 flights (p50, p99), and
requests per second from 4 concurrent client processes. It also checks that 200 served probabilities
equal the batch predictions of December (same model version).

Targets (issue 10): single p50 <= 5 ms, p99 <= 15 ms; batch of 100 p50 <= 15 ms; >= 300 requests/s
from 4 clients; the same with Redis.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FIRST, LAST = "2013-01-01", "2013-12-31"
TARGETS = {"single_p50_ms": 5.0, "single_p99_ms": 15.0, "batch100_p50_ms": 15.0, "requests_per_second": 300.0}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _timed(label: str, action):
    started = time.perf_counter()
    result = action()
    print(f"  {label}: {time.perf_counter() - started:.1f} s", flush=True)
    return result


def _count(sql: str) -> int:
    """A count in the data home's tables (DATA_PLATFORM_HOME); 0 when a table is not there yet."""
    import duckdb

    from data_platform import storage

    with storage.connection() as conn:
        try:
            return conn.execute(sql).fetchone()[0]
        except duckdb.Error:
            return 0


def build(home: Path, redis_url: str | None) -> None:
    """Everything serving needs for the year, skipping what a kept home already has."""
    from dagster import DagsterInstance

    from data_platform.mlflow_store import MlflowStore
    from data_platform.online.assets import OnlineStoreResource
    from data_platform.resources import build_resources
    from data_platform.runner import materialize_days, materialize_unpartitioned

    with DagsterInstance.get() as instance:
        resources = build_resources()
        if _count("SELECT count(DISTINCT day) FROM cleaned.flights") < 365:
            from dagster import AssetSelection

            from data_platform.assets.features import REFERENCE_INPUTS

            _timed("reference tables", lambda: materialize_unpartitioned(
                AssetSelection.assets(*REFERENCE_INPUTS).without_checks(), instance=instance, resources=resources))
            _timed("raw + cleaned, year", lambda: materialize_days(
                ["raw/flights", "raw/weather", "cleaned/flights", "cleaned/weather"], FIRST, LAST,
                instance=instance, resources=resources))
        if _count("SELECT count(DISTINCT day) FROM features.flight_features") < 365:
            _timed("features, year", lambda: materialize_days(["features/flight_features"], FIRST, LAST,
                                                              instance=instance, resources=resources))
        if MlflowStore.from_env().version_by_alias() is None:
            _timed("delay model (default windows)", lambda: materialize_unpartitioned(
                ["ml/delay_model"], instance=instance, resources=resources))
        if _count("SELECT count(DISTINCT day) FROM ml.delay_predictions WHERE day >= '2013-12-01'") < 31:
            _timed("predictions, December", lambda: materialize_days(["ml/delay_predictions"], "2013-12-01", LAST,
                                                                     instance=instance, resources=resources))
        store = home / "online" / "features.sqlite"
        if not store.exists() or _online_days(f"sqlite:///{store}") < 365:
            _timed("online features, year (SQLite)", lambda: materialize_days(
                ["ml/online_features"], FIRST, LAST, instance=instance, resources=resources))
        if redis_url and _online_days(redis_url) < 365:
            with_redis = {**resources, "online_store": OnlineStoreResource(url=redis_url)}
            _timed("online features, year (Redis)", lambda: materialize_days(
                ["ml/online_features"], FIRST, LAST, instance=instance, resources=with_redis))


def _online_days(url: str) -> int:
    from data_platform.online.store import open_store

    store = open_store(url, readonly=True)
    try:
        return len(store.days("schedule"))
    finally:
        store.close()


def sample_flights(count: int, seed: str = "serving") -> list[dict]:
    """Flights across the year, with their batch prediction when December has one."""
    from data_platform import storage
    from data_platform.online.assemble import LOCAL

    with storage.connection() as conn:
        rows = conn.execute(
            """
            SELECT f.carrier, f.flight, f.origin, f.dest, f.sched_dep_utc, f.tailnum, p.probability, p.model_version
            FROM features.flight_features f LEFT JOIN ml.delay_predictions p USING (day, carrier, flight, origin)
            ORDER BY hash(f.carrier, f.flight, f.day, $seed) LIMIT $count
            """, {"seed": seed, "count": count}).fetchall()
    flights = []
    for carrier, flight, origin, dest, departure, tailnum, probability, version in rows:
        body = {"carrier": carrier, "flight": flight, "origin": origin, "dest": dest,
                "scheduled_departure": departure.astimezone(LOCAL).isoformat()}
        if tailnum:
            body["tailnum"] = tailnum
        flights.append({"body": body, "probability": probability, "model_version": version})
    return flights


class Client:
    def __init__(self, port: int):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def post(self, path: str, payload: bytes) -> dict:
        try:
            self.connection.request("POST", path, payload, {"content-type": "application/json"})
            response = self.connection.getresponse()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            # the server closes keep-alive connections idle for 5 s: reconnect once
            self.connection.close()
            self.connection.request("POST", path, payload, {"content-type": "application/json"})
            response = self.connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"{path}: HTTP {response.status} {body[:300]!r}")
        return json.loads(body)


def _percentiles(seconds: list[float]) -> tuple[float, float]:
    import numpy as np

    values = np.array(seconds) * 1000
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def _load_client(port: int, payloads: list[bytes], duration: float, start_at: float, results) -> None:
    client = Client(port)
    while time.time() < start_at:
        time.sleep(0.001)
    done, index, end = 0, 0, start_at + duration
    while time.time() < end:
        client.post("/predict", payloads[index % len(payloads)])
        done += 1
        index += 1
    results.put(done)


def measure(port: int, flights: list[dict], singles: int, batches: int, duration: float) -> dict:
    client = Client(port)
    payloads = [json.dumps(f["body"]).encode() for f in flights]
    for payload in payloads[:200]:  # warm-up: page cache, code paths
        client.post("/predict", payload)
    times = []
    for payload in payloads[200:200 + singles]:
        started = time.perf_counter()
        client.post("/predict", payload)
        times.append(time.perf_counter() - started)
    single_p50, single_p99 = _percentiles(times)

    times = []
    for i in range(batches + 5):
        chunk = flights[(i * 100) % (len(flights) - 100):][:100]
        payload = json.dumps({"flights": [f["body"] for f in chunk]}).encode()
        started = time.perf_counter()
        answer = client.post("/predict/batch", payload)
        if i >= 5:
            times.append(time.perf_counter() - started)
        assert len(answer["predictions"]) == 100
    batch_p50, batch_p99 = _percentiles(times)

    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    start_at = time.time() + 2.0
    workers = [context.Process(target=_load_client, args=(port, payloads[i::4], duration, start_at, results))
               for i in range(4)]
    for worker in workers:
        worker.start()
    total = sum(results.get(timeout=duration + 60) for _ in workers)
    for worker in workers:
        worker.join()

    # Served probabilities equal the batch predictions of the same version (December flights).
    compared = mismatched = 0
    for flight in [f for f in flights if f["probability"] is not None][:200]:
        answer = client.post("/predict", json.dumps(flight["body"]).encode())
        if answer["model_version"] == flight["model_version"]:
            compared += 1
            mismatched += abs(answer["probability"] - flight["probability"]) > 1e-9
    return {"single_p50_ms": single_p50, "single_p99_ms": single_p99, "batch100_p50_ms": batch_p50,
            "batch100_p99_ms": batch_p99, "requests_per_second": total / duration,
            "parity_compared": compared, "parity_mismatches": mismatched}


def start_service(home: Path, store_url: str | None) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    env = {**os.environ, "DATA_PLATFORM_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    env.pop("DATA_PLATFORM_ONLINE_STORE", None)
    if store_url:
        env["DATA_PLATFORM_ONLINE_STORE"] = store_url
    process = subprocess.Popen([sys.executable, "-m", "data_platform", "serve", "--port", str(port)], cwd=ROOT, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return process, port
        except OSError:
            pass
        time.sleep(0.5)
    process.kill()
    raise RuntimeError("service did not become healthy")


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", metavar="DIR", help="data home to use and keep (default: a temporary one)")
    parser.add_argument("--no-redis", action="store_true", help="measure the SQLite store only")
    parser.add_argument("--redis-url", help="use this Redis server (loaded once, reused) instead of a throwaway one")
    parser.add_argument("--singles", type=int, default=2000)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of the 4-client load")
    args = parser.parse_args(argv)

    home = Path(args.keep).resolve() if args.keep else Path(tempfile.mkdtemp(prefix="bench_serving_"))
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster" / "dagster.yaml")
    os.environ["DATA_PLATFORM_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    os.environ.pop("DATA_PLATFORM_LANDING_DIR", None)
    os.environ.pop("DATA_PLATFORM_ONLINE_STORE", None)

    redis = None
    stores: list[tuple[str, str | None]] = [("SQLite", None)]
    try:
        redis_url = None
        if args.redis_url:
            redis_url = args.redis_url
            stores.append(("Redis", redis_url))
        elif not args.no_redis:
            binary = shutil.which("redis-server")
            if binary is None:
                print("redis-server not found: measuring SQLite only (apt-get install redis-server)")
            else:
                port = _free_port()
                redis = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                          "--appendonly", "no"], stdout=subprocess.DEVNULL)
                time.sleep(0.5)
                redis_url = f"redis://127.0.0.1:{port}/0"
                stores.append(("Redis", redis_url))
        print(f"building in {home} (cpu count {os.cpu_count()})", flush=True)
        build(home, redis_url)
        flights = sample_flights(max(args.singles + 200, 3000))
        results = {}
        for name, url in stores:
            print(f"measuring {name} (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores) ...", flush=True)
            process, port = start_service(home, url)
            try:
                results[name] = measure(port, flights, args.singles, args.batches, args.duration)
            finally:
                stop(process)
            results[name]["load_average"] = os.getloadavg()[0]
            print(f"  {results[name]}", flush=True)
    finally:
        if redis is not None:
            redis.terminate()
            redis.wait(timeout=10)
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)

    print()
    print(f"{'figure':<34}{'target':>10}" + "".join(f"{name:>12}" for name in results))
    labels = {"single_p50_ms": ("single request p50 (ms)", "<= 5"), "single_p99_ms": ("single request p99 (ms)", "<= 15"),
              "batch100_p50_ms": ("batch of 100 p50 (ms)", "<= 15"), "batch100_p99_ms": ("batch of 100 p99 (ms)", ""),
              "requests_per_second": ("requests/s, 4 clients", ">= 300"),
              "parity_compared": ("December flights compared", ""), "parity_mismatches": ("probability mismatches", "0"),
              "load_average": ("machine load average (1 min)", "")}
    for key, (label, target) in labels.items():
        print(f"{label:<34}{target:>10}" + "".join(f"{figures[key]:>12.1f}" for figures in results.values()))
    failed = [f"{name} {key}" for name, figures in results.items() for key, limit in TARGETS.items()
              if (figures[key] < limit if key == "requests_per_second" else figures[key] > limit)]
    failed += [f"{name} parity" for name, figures in results.items() if figures["parity_mismatches"]]
    print("\nall targets met" if not failed else f"\nmissed: {', '.join(failed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A home with features, a champion, batch predictions and the online store, and the real service on it.

Built once per test module from the session's seeded tables (raw and cleaned January 1-21): features
for the 21 days, a small model trained on January 6-14 (holdout 16-21), batch predictions of the
holdout days and `ml/online_features` for every day. The service runs as its own process
(`python -m data_platform serve`) on a free loopback port, as users run it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import pytest
from dagster import AssetSelection, DagsterInstance, materialize

from data_platform import storage
from data_platform.online import assemble as A
from data_platform.online.assets import COMPARED, same
from data_platform.settings import PROJECT_ROOT
from data_platform_tests.ml_fixtures import copy_tables

DAYS = ("2013-01-01", "2013-01-21")
SCORED = ("2013-01-16", "2013-01-21")
MODEL_CONFIG = dict(train_first="2013-01-06", train_last="2013-01-14", holdout_first="2013-01-16",
                    holdout_last="2013-01-21", max_iter=60, min_samples_leaf=40)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def platform_env(home: Path, **extra: str) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATA_PLATFORM_HOME", str(home))
        patch.setenv("DAGSTER_HOME", str(home / "dagster"))
        patch.delenv("DATA_PLATFORM_LANDING_DIR", raising=False)
        patch.delenv("DATA_PLATFORM_SAMPLE_FRACTION", raising=False)
        patch.delenv("DATA_PLATFORM_ONLINE_STORE", raising=False)
        for name, value in extra.items():
            patch.setenv(name, value)
        yield


def new_home(root: Path) -> Path:
    home = root / "data"
    (home / "dagster").mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster" / "dagster.yaml")
    return home


def run(selection, first: Optional[str] = None, last: Optional[str] = None, run_config=None, resources=None):
    """One in-process run of the platform's assets (and their checks) in the current environment."""
    from data_platform.definitions import defs
    from data_platform.resources import build_resources

    if not isinstance(selection, AssetSelection):
        selection = AssetSelection.from_coercible(list(selection))
    tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last} if first else {}
    with DagsterInstance.get() as instance:
        return materialize([*defs.assets, *(defs.asset_checks or [])], selection=selection, instance=instance,
                           resources=resources or build_resources(), tags=tags, run_config=run_config,
                           raise_on_error=False)


def build_serving_home(root: Path, seeded_warehouse: Path) -> Path:
    home = new_home(root)
    copy_tables(seeded_warehouse, home)
    with platform_env(home):
        assert run(["features/flight_features"], *DAYS).success
        assert run(AssetSelection.assets(["ml", "delay_model"]),
                   run_config={"ops": {"ml__delay_model": {"config": MODEL_CONFIG}}}).success
        assert run(["ml/delay_predictions"], *SCORED).success
        assert run(["ml/online_features"], *DAYS).success
    return home


# --- what the service answers, next to what the warehouse holds ---------------------------------------

def offline_rows(home: Path, first: str, last: str, every: int = 1) -> list[dict]:
    with platform_env(home), storage.connection() as conn:
        cursor = conn.execute(
            """
            SELECT f.*, p.probability, p.model_version FROM features.flight_features f
            LEFT JOIN ml.delay_predictions p USING (day, carrier, flight, origin)
            WHERE f.day BETWEEN ? AND ? ORDER BY f.day, f.carrier, f.flight, f.origin
            """, [first, last])
        names = [c[0] for c in cursor.description]
        rows = [dict(zip(names, row)) for row in cursor.fetchall()]
    return rows[::every]


def request_of(row: dict) -> dict:
    local = row["sched_dep_utc"].astimezone(A.LOCAL)
    body = {"carrier": row["carrier"], "flight": row["flight"], "origin": row["origin"], "dest": row["dest"],
            "scheduled_departure": local.isoformat()}
    if row["tailnum"] is not None:
        body["tailnum"] = row["tailnum"]
    return body


def mismatches(answer: dict, row: dict, with_probability: bool = True) -> list[str]:
    wrong = [name for name in COMPARED if not same(answer["features"].get(name), row[name])]
    if with_probability:
        if answer["model_version"] != row["model_version"] or abs(answer["probability"] - row["probability"]) > 1e-9:
            wrong.append(f"probability {answer['probability']} v{answer['model_version']} != "
                         f"{row['probability']} v{row['model_version']}")
    return wrong


@dataclass
class Service:
    url: str
    process: subprocess.Popen
    log: Path

    def call(self, method: str, path: str, body=None, raw: Optional[bytes] = None, headers=None) -> tuple[int, dict]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"content-type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            body = error.read() or b"{}"
            try:
                return error.code, json.loads(body)
            except ValueError:  # a server error answered in plain text
                return error.code, {"body": body.decode(errors="replace")}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_service(home: Path, expect_healthy: bool = True, **env: str) -> Service:
    port = free_port()
    log = home / f"serve-{port}.log"
    environment = {**os.environ, "DATA_PLATFORM_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"),
                   "DATA_PLATFORM_SERVING_POLL_SECONDS": "1", **env}
    environment.pop("DATA_PLATFORM_LANDING_DIR", None)
    if "DATA_PLATFORM_ONLINE_STORE" not in env:
        environment.pop("DATA_PLATFORM_ONLINE_STORE", None)
    with open(log, "w") as handle:
        process = subprocess.Popen([sys.executable, "-m", "data_platform", "serve", "--port", str(port)],
                                   cwd=PROJECT_ROOT, env=environment, stdout=handle, stderr=subprocess.STDOUT)
    service = Service(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"service exited: {log.read_text()[-3000:]}")
        try:
            status, _ = service.call("GET", "/health")
            if status == 200 or (not expect_healthy and status == 503):
                return service
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.3)
    service.stop()
    raise RuntimeError(f"service not healthy in 90 s: {log.read_text()[-3000:]}")


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway Redis server on a free loopback port (no persistence); yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (.ci/run installs it: apt-get install redis-server)")
    port = free_port()
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    break
            time.sleep(0.1)
        else:
            raise RuntimeError("redis-server did not start")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)

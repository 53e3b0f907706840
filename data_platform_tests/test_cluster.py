"""The data work on a real Dask cluster: a scheduler and two workers as separate OS processes on 127.0.0.1."""

import datetime as dt
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request

import pytest
from dagster import DagsterInstance

from data_platform import storage
from data_platform.assets.features import CONTRACT as FEATURES
from data_platform.datasets import dataset
from data_platform.ingest import SourceResource
from data_platform.resources import build_resources
from data_platform.runner import materialize_days, materialize_unpartitioned
from data_platform.settings import PROJECT_ROOT
from data_platform_tests.test_foundation import write_landing_days

pytestmark = pytest.mark.real_process  # a real scheduler and worker processes

DASK = str(PROJECT_ROOT / ".venv" / "bin" / "dask")
MONTH = ("2013-01-01", "2013-01-31")
PIPELINE = ["raw/flights", "raw/weather", "cleaned/flights", "cleaned/weather", "features/flight_features"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cluster:
    """`dask scheduler` and `dask worker` processes, as a production cluster runs them."""

    def __init__(self, workers: int = 2):
        self.address = f"tcp://127.0.0.1:{free_port()}"
        port = self.address.rsplit(":", 1)[1]
        quiet = dict(cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.dashboard = f"http://127.0.0.1:{free_port()}/status"
        self.scheduler = subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", port,
                                           "--dashboard-address", self.dashboard.split("/")[2]], **quiet)
        self.workers = [subprocess.Popen([DASK, "worker", self.address, "--nthreads", "1", "--host", "127.0.0.1",
                                          "--no-dashboard", "--no-nanny"], **quiet) for _ in range(workers)]
        from distributed import Client

        with Client(self.address, timeout="60s") as client:
            client.wait_for_workers(workers, timeout=120)

    def worker_pids(self) -> dict[str, int]:
        from distributed import Client

        with Client(self.address, timeout="10s") as client:
            return client.run(os.getpid)

    def busy_workers(self) -> list[str]:
        from distributed import Client

        with Client(self.address, timeout="10s") as client:
            return [address for address, tasks in client.processing().items() if tasks]

    def stop(self) -> None:
        # Workers first, then the scheduler: a worker that sees its scheduler go before its own SIGTERM
        # is handled spends its connect timeout (30 s) retrying the dead scheduler.
        for group in (self.workers, [self.scheduler]):
            for process in group:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGTERM)
            for process in group:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture
def cluster():
    started = Cluster()
    yield started
    started.stop()


def day_hashes(first: str, last: str) -> dict:
    first, last = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    with storage.connection() as conn:
        return {contract.name: {str(day): (s.rows, s.data_version)
                                for day, s in storage.partition_stats(conn, contract, first, last).items()}
                for contract in (dataset("flights").raw, dataset("flights").cleaned, dataset("weather").cleaned, FEATURES)}


def run_month(instance, monkeypatch, scheduler: str | None):
    if scheduler:
        monkeypatch.setenv("DATA_PLATFORM_DASK_SCHEDULER", scheduler)
    else:
        monkeypatch.delenv("DATA_PLATFORM_DASK_SCHEDULER", raising=False)
    resources = build_resources()
    materialize_unpartitioned(["raw/airports", "cleaned/airports", "raw/planes", "cleaned/planes"],
                              instance=instance, resources=resources)
    return materialize_days(PIPELINE, *MONTH, instance=instance, resources=resources)


def test_a_month_on_two_real_workers_equals_the_in_process_run_day_for_day(
        cluster, platform_home, instance, monkeypatch, tmp_path):
    in_process = run_month(instance, monkeypatch, None)
    reference = day_hashes(*MONTH)
    assert all(rows for rows, _ in reference["features.flight_features"].values())

    other_home = tmp_path / "on_cluster"
    (other_home / "dagster").mkdir(parents=True)
    (other_home / "dagster" / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
    monkeypatch.setenv("DATA_PLATFORM_HOME", str(other_home))
    monkeypatch.setenv("DAGSTER_HOME", str(other_home / "dagster"))
    with DagsterInstance.get() as other_instance:
        on_cluster = run_month(other_instance, monkeypatch, cluster.address)
        logs = [entry.user_message for entry in other_instance.all_logs(on_cluster.run_id)
                if entry.user_message.startswith("chunk 2013-01")]
    assert day_hashes(*MONTH) == reference

    assert _metadata(in_process, "features/flight_features")["compute"] == "in process"
    spread = _metadata(on_cluster, "features/flight_features")
    assert spread["compute"] == f"dask {cluster.address}" and spread["chunks_in_run"] == 5
    assert spread["workers_in_run"] == 2
    # the cluster outlives the run: its materializations link its dashboard (bokeh is installed)
    assert spread["dask_dashboard"] == cluster.dashboard
    with urllib.request.urlopen(cluster.dashboard, timeout=30) as page:
        assert page.status == 200 and b"Dask" in page.read()
    # every chunk of every asset, as it finished: days, rows, worker, seconds
    assert len(logs) == 5 * len(PIPELINE)
    assert {line.split(" rows on ")[1].split(" in ")[0] for line in logs} == set(cluster.worker_pids())


def test_a_cluster_started_for_the_run_is_logged_with_its_dashboard_and_no_link_outlives_it(
        platform_home, instance, monkeypatch):
    monkeypatch.setenv("DATA_PLATFORM_DASK_SCHEDULER", "local:1")
    result = materialize_days(["raw/flights"], MONTH[0], MONTH[0], instance=instance, resources=build_resources())
    spread = _metadata(result, "raw/flights", MONTH[0])
    assert spread["compute"].startswith("dask local:1 (tcp://127.0.0.1:") and spread["chunks_in_run"] == 1
    # its dashboard closed with the run: a link in the materialization would be dead
    assert "dask_dashboard" not in spread
    [line] = [entry.user_message for entry in instance.all_logs(result.run_id) if "Dask dashboard" in entry.user_message]
    assert line.endswith("/status (until the run ends)"), line


def _metadata(result, key: str, partition: str = MONTH[1]) -> dict:
    [event] = [e for e in result.get_asset_materialization_events()
               if e.materialization.asset_key.to_user_string() == key and e.materialization.partition == partition]
    return {name: value.value for name, value in event.materialization.metadata.items()}


def test_a_worker_killed_mid_chunk_has_its_chunk_run_again_and_every_day_holds_one_copy(
        cluster, platform_home, instance, monkeypatch):
    monkeypatch.setenv("DATA_PLATFORM_DASK_SCHEDULER", cluster.address)
    resources = build_resources()
    killed = {}

    def kill_a_busy_worker():
        pids = cluster.worker_pids()
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not killed:
            for address in cluster.busy_workers():
                os.kill(pids[address], signal.SIGKILL)
                killed[address] = pids[address]
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_a_busy_worker)
    killer.start()
    result = materialize_days(["raw/flights"], *MONTH, instance=instance, resources=resources)
    killer.join()
    assert killed, "no worker was ever busy: the kill did not happen"
    assert result.success
    with storage.connection() as conn:
        rows, distinct, days = conn.execute(
            "SELECT count(*), count(DISTINCT (day, _source_uri, _source_row)), count(DISTINCT day) FROM raw.flights"
        ).fetchall()[0]
    sent = SourceResource().read_daily("flights", *map(dt.date.fromisoformat, MONTH))
    assert rows == distinct == len(sent) and days == 31


def test_an_unreachable_scheduler_fails_the_run_at_once_naming_its_address(platform_home, instance, monkeypatch):
    address = f"tcp://127.0.0.1:{free_port()}"
    monkeypatch.setenv("DATA_PLATFORM_DASK_SCHEDULER", address)
    started = time.monotonic()
    result = materialize_days(["raw/flights"], "2013-01-01", "2013-01-02", instance=instance,
                              resources=build_resources(), raise_on_error=False)
    assert not result.success and time.monotonic() - started < 60
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert f"Dask scheduler {address} is unreachable" in failure.step_failure_data.user_failure_data.description


def test_a_chunk_that_raises_fails_the_run_with_its_days_and_the_committed_days_stay_consistent(
        cluster, platform_home, instance, monkeypatch, tmp_path):
    landing = tmp_path / "landing"
    days = list(write_landing_days(landing, "flights", "2013-01-01", "2013-01-14"))
    (landing / "flights" / "2013-01-10.csv").rename(landing / "flights" / "held-back.csv")
    monkeypatch.setenv("DATA_PLATFORM_LANDING_DIR", str(landing))
    monkeypatch.setenv("DATA_PLATFORM_DASK_SCHEDULER", cluster.address)
    result = materialize_days(["raw/flights"], days[0], days[-1], instance=instance, resources=build_resources(),
                              raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    description = failure.step_failure_data.user_failure_data.description
    assert "1 of 2 chunk(s) of ingest flights failed: 2013-01-08..2013-01-14: SourceError" in description
    assert "2013-01-10.csv: no file for 2013-01-10" in description
    assert "Committed: 2013-01-01..2013-01-07" in description
    with storage.connection() as conn:
        stored = [row[0] for row in conn.execute("SELECT DISTINCT day FROM raw.flights ORDER BY day").fetchall()]
    assert [str(day) for day in stored] == days[:7]  # the failed chunk wrote nothing

    (landing / "flights" / "held-back.csv").rename(landing / "flights" / "2013-01-10.csv")
    rerun = materialize_days(["raw/flights"], days[0], days[-1], instance=instance, resources=build_resources())
    assert rerun.success
    with storage.connection() as conn:
        assert conn.execute("SELECT count(DISTINCT day) FROM raw.flights").fetchall()[0][0] == 14

"""Recovery: a real run process killed in the middle of a partition write loses nothing."""

import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import duckdb
import pytest
from dagster import DagsterEventType, DagsterRunStatus, EventRecordsFilter

from data_platform.resources import build_resources

from data_platform.datasets import dataset
from data_platform.runner import materialize_days
from data_platform.settings import PROJECT_ROOT
from data_platform.ingest import SourceResource
from data_platform.storage import partition_stats
from data_platform_tests.test_foundation import write_landing_day

DAGSTER = str(PROJECT_ROOT / ".venv" / "bin" / "dagster")
YEAR = "2013-01-01...2013-12-31"


def materialize_command(partition_range: str) -> list[str]:
    return [DAGSTER, "asset", "materialize", "-m", "data_platform.definitions", "--select", "raw/flights",
            "--partition-range", partition_range]


def holds_open(pid: int, path: Path) -> bool:
    try:
        return any(os.readlink(f"/proc/{pid}/fd/{fd}") == str(path) for fd in os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError):
        return False


def stored(warehouse_file: Path):
    import datetime as dt

    with duckdb.connect(str(warehouse_file), read_only=True) as conn:
        stats = partition_stats(conn, dataset("flights").raw, dt.date(2013, 1, 1), dt.date(2013, 12, 31))
        run_ids = {row[0] for row in conn.execute("SELECT DISTINCT _run_id FROM raw.flights").fetchall()}
    return {day: s for day, s in stats.items() if s.rows}, run_ids


@pytest.mark.real_process  # a real run process, killed
def test_a_run_killed_while_writing_a_year_leaves_january_intact_and_a_rerun_completes(platform_home, instance, resources):
    warehouse_file = platform_home / "warehouse.duckdb"
    wal = Path(f"{warehouse_file}.wal")
    january = materialize_days(["raw/flights"], "2013-01-01", "2013-01-31", instance=instance, resources=resources)
    before, before_runs = stored(warehouse_file)
    assert len(before) == 31 and before_runs == {january.run_id}

    # a real `dagster asset materialize` process rewriting the whole year (January included)
    process = subprocess.Popen(
        materialize_command(YEAR), cwd=PROJECT_ROOT, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 240
        while not holds_open(process.pid, warehouse_file):
            assert process.poll() is None, "the run ended before it opened the warehouse"
            assert time.monotonic() < deadline, "the run never opened the warehouse"
            time.sleep(0.02)
        # it has read the source and opened the warehouse: the year's rows are being written in
        # one transaction; a commit would write the WAL first
        time.sleep(0.3)
        committing = wal.exists()
        os.killpg(process.pid, signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert not committing, "the kill came after the commit had started; the test did not hit the write"

    [killed] = [run for run in instance.get_runs() if run.run_id != january.run_id]
    assert killed.status == DagsterRunStatus.STARTED  # died mid-run, never finished

    after, after_runs = stored(warehouse_file)
    assert after == before  # same days, same row counts, same content hashes
    assert after_runs == {january.run_id}  # nothing of the killed run was committed

    # The dead run still holds the DuckDB pool slot, so any re-run would wait for it forever. What an
    # operator does (README, Operations): terminate it in the UI ("force termination" marks it
    # canceled); the daemon then frees its slots (run_monitoring.free_slots_after_run_end_seconds).
    claims = instance.event_log_storage.get_concurrency_info("duckdb").claimed_slots
    assert [claim.run_id for claim in claims] == [killed.run_id]
    instance.report_run_canceled(killed, message="run worker killed; marked canceled by the operator")
    instance.event_log_storage.free_concurrency_slots_for_run(killed.run_id)
    assert not instance.event_log_storage.get_concurrency_info("duckdb").claimed_slots

    rerun = subprocess.run(materialize_command(YEAR), cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    complete, complete_runs = stored(warehouse_file)
    assert len(complete) == 365 and sum(s.rows for s in complete.values()) == 336_776
    assert {day: complete[day] for day in before} == before  # January rewritten to identical content
    assert len(complete_runs) == 1 and complete_runs != before_runs


def test_a_source_read_that_fails_twice_is_retried_with_growing_backoff_and_succeeds(tmp_path, instance):
    """A landing file that cannot be read for a while (here: a directory where the file will be, an
    OSError like a flaky mount gives) is read again with exponential backoff and jitter."""
    landing = tmp_path / "landing"
    write_landing_day(landing, "flights", "2013-01-02")
    drop = landing / "flights" / "2013-01-02.csv"
    real = drop.read_bytes()
    drop.unlink()
    drop.mkdir()  # reading it raises IsADirectoryError

    def retries():
        records = instance.get_event_records(EventRecordsFilter(event_type=DagsterEventType.STEP_UP_FOR_RETRY))
        return sorted(records, key=lambda record: record.storage_id)

    def fix_after_two_failures():
        deadline = time.monotonic() + 120
        while len(retries()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        shutil.rmtree(drop)
        drop.write_bytes(real)  # the third attempt comes at least 4 s after the second failure

    fixer = threading.Thread(target=fix_after_two_failures, daemon=True)
    fixer.start()
    resources = {**build_resources(), "source": SourceResource(landing_dir=str(landing))}
    result = materialize_days(["raw/flights"], "2013-01-02", instance=instance, resources=resources)
    fixer.join(timeout=30)

    assert result.success
    waits = [record.event_log_entry.dagster_event.event_specific_data.seconds_to_wait for record in retries()]
    assert len(waits) == 2
    # delay 2 s, exponential: attempt n waits (2**n - 1) * 2 s, plus or minus up to 2 s of jitter
    assert 0 <= waits[0] <= 4 and 4 <= waits[1] <= 8
    restarts = [e for e in result.all_events if e.event_type_value == "STEP_RESTARTED"]
    assert len(restarts) == 2

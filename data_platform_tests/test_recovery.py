"""Recovery: a real run process killed in the middle of a partition write loses nothing."""

import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterRunStatus, EventRecordsFilter

from data_platform.resources import build_resources

from data_platform.datasets import dataset
from data_platform.runner import materialize_days
from data_platform.settings import PROJECT_ROOT
from data_platform.ingest import SourceResource
from data_platform import storage
from data_platform.storage.delta import table_path
from data_platform_tests.test_foundation import write_landing_day

DAGSTER = str(PROJECT_ROOT / ".venv" / "bin" / "dagster")
YEAR = "2013-01-01...2013-12-31"


def materialize_command(partition_range: str) -> list[str]:
    return [DAGSTER, "asset", "materialize", "-m", "data_platform.definitions", "--select", "raw/flights",
            "--partition-range", partition_range]


def data_files(table: Path) -> set[Path]:
    return set(table.glob("day=*/*.parquet"))


def commits(table: Path) -> list[str]:
    return sorted(path.name for path in (table / "_delta_log").glob("*.json"))


def stored():
    import datetime as dt

    with storage.connection() as conn:
        stats = storage.partition_stats(conn, dataset("flights").raw, dt.date(2013, 1, 1), dt.date(2013, 12, 31))
        run_ids = {row[0] for row in conn.execute("SELECT DISTINCT _run_id FROM raw.flights").fetchall()}
    return {day: (s.rows, s.data_version) for day, s in stats.items() if s.rows}, run_ids


@pytest.mark.real_process  # a real run process, killed
def test_a_run_killed_while_writing_a_year_leaves_january_intact_and_a_rerun_completes(platform_home, instance, resources):
    table = table_path("raw.flights")
    january = materialize_days(["raw/flights"], "2013-01-01", "2013-01-31", instance=instance, resources=resources)
    before, before_runs = stored()
    assert len(before) == 31 and before_runs == {january.run_id}
    files, log = data_files(table), commits(table)

    # a real `dagster asset materialize` process rewriting the whole year (January included)
    process = subprocess.Popen(
        materialize_command(YEAR), cwd=PROJECT_ROOT, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 240
        while data_files(table) == files:
            assert process.poll() is None, "the run ended before it wrote a data file"
            assert time.monotonic() < deadline, "the run never wrote a data file"
            time.sleep(0.02)
        # it has read the source and is writing the year's data files; they become rows only when
        # the commit (the next _delta_log entry) is written after the last of them
        os.killpg(process.pid, signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert commits(table) == log, "the kill came after the commit; the test did not hit the write"
    assert data_files(table) - files, "the killed run left no data file; the test did not hit the write"

    [killed] = [run for run in instance.get_runs() if run.run_id != january.run_id]
    assert killed.status == DagsterRunStatus.STARTED  # died mid-run, never finished

    after, after_runs = stored()
    assert after == before  # same days, same row counts, same content hashes
    assert after_runs == {january.run_id}  # nothing of the killed run was committed

    # The dead run holds no pool slot (the tables need none), so a re-run starts at once: nobody
    # has to terminate the dead run first.
    events = instance.event_log_storage
    assert not [key for key in events.get_concurrency_keys()
                if events.get_concurrency_info(key).claimed_slots]
    rerun = subprocess.run(materialize_command(YEAR), cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    complete, complete_runs = stored()
    # the killed run's data files are not read: every day holds exactly the re-run's rows
    assert len(complete) == 365 and sum(rows for rows, _ in complete.values()) == 336_776
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

"""The Dagster instance on PostgreSQL: a throwaway server on loopback, the instance configured the
way `make` configures it (dagster.yaml + dagster.postgres.yaml), a real run stored there."""

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg2
import pytest
from dagster import DagsterInstance

from data_platform.resources import build_resources
from data_platform.runner import materialize_unpartitioned
from data_platform.settings import PROJECT_ROOT
from data_platform_tests.devstack import free_port

pytestmark = pytest.mark.real_process  # a throwaway PostgreSQL server


def postgres_bin() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    found = candidates[0] if candidates else shutil.which("initdb")
    assert found, "PostgreSQL server binaries not found: `apt-get install postgresql-15` (.ci/run does this)"
    return Path(found).parent


@pytest.fixture
def postgres_url():
    """A PostgreSQL server of its own on a free loopback port, removed afterwards."""
    binaries = postgres_bin()
    root = Path(tempfile.mkdtemp(prefix="dagster-pg-"))
    data, port = root / "data", free_port()
    # initdb and postgres refuse to run as root: run them as the `postgres` system user then
    as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_owner:
        shutil.chown(root, "postgres")
    run = lambda *args: subprocess.run([*as_owner, *args], check=True, capture_output=True, timeout=120)  # noqa: E731
    run(str(binaries / "initdb"), "-D", str(data), "-U", "dagster", "--auth=trust", "-E", "UTF8")
    run(str(binaries / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w", "-t", "60", "start",
        "-o", f"-h 127.0.0.1 -p {port} -k {root}")
    try:
        run(str(binaries / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "dagster", "dagster")
        yield f"postgresql+psycopg2://dagster@127.0.0.1:{port}/dagster"
    finally:
        run(str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


def test_runs_and_events_are_stored_in_postgres_when_its_url_is_given(platform_home, postgres_url, monkeypatch):
    dagster_home = platform_home / "dagster"
    # what `make dev` writes when DAGSTER_PG_URL is set
    config = (PROJECT_ROOT / "dagster.yaml").read_text() + (PROJECT_ROOT / "dagster.postgres.yaml").read_text()
    (dagster_home / "dagster.yaml").write_text(config)
    monkeypatch.setenv("DAGSTER_PG_URL", postgres_url)

    with DagsterInstance.get() as instance:
        storages = {type(s).__name__ for s in (instance.run_storage, instance.event_log_storage, instance.schedule_storage)}
        assert storages == {"PostgresRunStorage", "PostgresEventLogStorage", "PostgresScheduleStorage"}
        assert instance.run_retries_enabled and instance.run_monitoring_enabled  # the rest of dagster.yaml holds
        result = materialize_unpartitioned(["raw/airlines"], instance=instance, resources=build_resources())
        assert result.success

    with psycopg2.connect(postgres_url.replace("+psycopg2", "")) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT status FROM runs WHERE run_id = %s", [result.run_id])
        assert cursor.fetchone() == ("SUCCESS",)
        cursor.execute(
            "SELECT count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'",
            [result.run_id],
        )
        assert cursor.fetchone()[0] == 1
    assert not (dagster_home / "history").exists()  # nothing went to the SQLite default

    with DagsterInstance.get() as reopened:  # another process' view: the run is there
        assert reopened.get_run_by_id(result.run_id).is_success

"""Versioned storage: Delta tables behind one boundary, with history, time travel, restore and parallel runs."""

import datetime as dt
import os
import subprocess

import pytest
from dagster import AssetKey

from data_platform import storage
from data_platform.__main__ import main
from data_platform.datasets import dataset
from data_platform.runner import materialize_days
from data_platform.settings import PROJECT_ROOT
from data_platform.storage import delta

JAN_1, JAN_2, JAN_3 = dt.date(2013, 1, 1), dt.date(2013, 1, 2), dt.date(2013, 1, 3)
DAGSTER = str(PROJECT_ROOT / ".venv" / "bin" / "dagster")


def cleaned_stats(first=JAN_1, last=JAN_3, version=None):
    with storage.connection() as conn:
        if version is not None:
            storage.attach(conn, "cleaned.flights", version=version)
        return {day: (s.rows, s.data_version) for day, s in
                storage.partition_stats(conn, dataset("flights").cleaned, first, last).items()}


def test_a_run_is_one_commit_per_table_recording_who_wrote_it(platform_home, instance, resources):
    result = materialize_days(["raw/flights", "cleaned/flights"], JAN_1, JAN_3, instance=instance, resources=resources)
    for name, asset in (("raw.flights", "raw/flights"), ("cleaned.flights", "cleaned/flights"),
                        ("quarantine.flights", "cleaned/flights")):
        [commit] = delta.history(name)
        assert (commit["run_id"], commit["asset_key"], commit["days"]) == (result.run_id, asset, "2013-01-01..2013-01-03")
        assert commit["code_version"] and commit["operation"] == "WRITE"
        # the file-list read path skips reader features: every table must stay at reader protocol 1
        assert delta.open_table(name).protocol().min_reader_version == 1
        assert sorted(path.name for path in delta.table_path(name).iterdir() if path.name.startswith("day=")) == [
            "day=2013-01-01", "day=2013-01-02", "day=2013-01-03"] or name == "quarantine.flights"
    materializations = [e.materialization for e in result.get_asset_materialization_events()
                        if e.materialization.asset_key == AssetKey(["cleaned", "flights"])]
    assert {m.partition for m in materializations} == {"2013-01-01", "2013-01-02", "2013-01-03"}
    for materialization in materializations:
        assert materialization.metadata["table_version"].value == 0
        assert materialization.metadata["dagster/uri"].value == delta.table_path("cleaned.flights").as_uri()


def test_a_range_runs_in_process_as_chunks_of_days_each_one_commit_and_the_rows_do_not_change(
        platform_home, instance, resources):
    """In process, a run's days are written in chunks (31 days by default: what bounds a step's memory);
    each chunk is one commit of its days, and the rows are those of a single pass."""
    from data_platform.compute import ComputeResource

    jan_5 = dt.date(2013, 1, 5)
    materialize_days(["raw/flights", "cleaned/flights"], JAN_1, jan_5, instance=instance, resources=resources)
    assert [c["days"] for c in delta.history("cleaned.flights")] == ["2013-01-01..2013-01-05"]
    single = cleaned_stats(JAN_1, jan_5)

    chunked = materialize_days(["raw/flights", "cleaned/flights"], JAN_1, jan_5, instance=instance,
                               resources={**resources, "compute": ComputeResource(chunk_days=2)})
    # the bundled source is one file, which every chunk would read whole: it is read in one pass
    [raw] = delta.history("raw.flights")[:1]
    assert (raw["days"], raw["run_id"]) == ("2013-01-01..2013-01-05", chunked.run_id)
    for name in ("cleaned.flights", "quarantine.flights"):
        newest = delta.history(name)[:3]
        assert [c["days"] for c in reversed(newest)] == [
            "2013-01-01..2013-01-02", "2013-01-03..2013-01-04", "2013-01-05..2013-01-05"], name
        assert {c["run_id"] for c in newest} == {chunked.run_id}
    assert cleaned_stats(JAN_1, jan_5) == single
    [materialization] = [e.materialization for e in chunked.get_asset_materialization_events()
                         if e.materialization.asset_key == AssetKey(["cleaned", "flights"])
                         and e.materialization.partition == "2013-01-05"]
    assert materialization.metadata["chunks_in_run"].value == 3
    assert materialization.metadata["chunk_log"].value.count("step process") == 3
    logged = [entry.user_message for entry in instance.all_logs(chunked.run_id)]
    assert any(m.startswith("chunk 2013-01-03..2013-01-04: ") and m.endswith("(2/3)") for m in logged), logged


def test_each_connection_spills_past_its_memory_limit_into_the_home(platform_home, monkeypatch):
    monkeypatch.setenv("DATA_PLATFORM_DUCKDB_MEMORY_LIMIT", "300MB")
    with storage.connection() as conn:
        limit, temp = conn.execute("SELECT current_setting('memory_limit'), current_setting('temp_directory')").fetchone()
    assert limit == "286.1 MiB" and temp == str(platform_home / "tmp")
    monkeypatch.setenv("DATA_PLATFORM_DUCKDB_MEMORY_LIMIT", "lots")
    with pytest.raises(ValueError, match="DATA_PLATFORM_DUCKDB_MEMORY_LIMIT must be a size such as 2GB or 512MiB, got 'lots'"):
        with storage.connection():
            pass


def test_rows_outside_the_replaced_days_are_refused_and_nothing_changes(platform_home, instance, resources):
    materialize_days(["raw/flights", "cleaned/flights"], JAN_1, JAN_3, instance=instance, resources=resources)
    before = cleaned_stats()
    with storage.connection() as conn, pytest.raises(storage.StorageError, match="rows outside days 2013-01-02..2013-01-02"):
        # three days of rows handed over as the replacement of one
        storage.replace_days(conn, dataset("flights").cleaned, "SELECT * FROM cleaned.flights", [],
                             dt.date(2013, 1, 2), dt.date(2013, 1, 2))
    assert len(delta.history("cleaned.flights")) == 1 and cleaned_stats() == before


def test_an_older_version_reads_back_and_a_restore_is_a_new_version_that_dagster_sees(
        platform_home, instance, resources, monkeypatch, capsys):
    materialize_days(["raw/flights", "cleaned/flights"], JAN_1, JAN_3, instance=instance, resources=resources)
    original = cleaned_stats()
    # a bad re-run: half of the flights
    monkeypatch.setenv("DATA_PLATFORM_SAMPLE_FRACTION", "0.5")
    from data_platform.resources import build_resources

    materialize_days(["raw/flights", "cleaned/flights"], JAN_1, JAN_3, instance=instance, resources=build_resources())
    halved = cleaned_stats()
    assert all(halved[day][0] < original[day][0] for day in original)
    assert cleaned_stats(version=0) == original  # time travel: version 0 is still there

    assert main(["table", "restore", "cleaned.flights", "--version", "0", "--reason", "sampled by mistake"]) == 0
    assert cleaned_stats() == original
    [restore, rerun, first] = delta.history("cleaned.flights")
    assert (restore["operation"], restore["reason"], restore["restored_version"]) == ("RESTORE", "sampled by mistake", "0")
    event = instance.get_latest_materialization_event(AssetKey(["cleaned", "flights"]))
    assert event.asset_materialization.metadata["reason"].value == "sampled by mistake"
    assert event.asset_materialization.metadata["restored_version"].value == 0
    restored_day = dt.date.fromisoformat(event.asset_materialization.partition)
    assert event.asset_materialization.metadata["dagster/row_count"].value == original[restored_day][0]
    assert event.asset_materialization.metadata["table_version"].value == restore["version"]
    # the restore itself can be undone: it is a version like any other
    assert main(["table", "restore", "cleaned.flights", "--version", str(rerun["version"]), "--reason", "undo"]) == 0
    assert cleaned_stats() == halved
    capsys.readouterr()
    assert main(["table", "show", "cleaned.flights", "--version", "99"]) == 1
    assert "cleaned.flights has no version 99" in capsys.readouterr().err
    assert main(["table", "history", "cleaned.flights"]) == 0
    assert "restored version 0: sampled by mistake" in capsys.readouterr().out


def test_a_concurrent_replace_of_the_same_days_is_refused_and_names_the_other_run(platform_home, instance, resources):
    materialize_days(["raw/flights", "cleaned/flights"], JAN_1, JAN_3, instance=instance, resources=resources)
    cleaned = dataset("flights").cleaned
    with storage.connection() as slow:  # reads version 0, then another run commits before it writes
        other = materialize_days(["cleaned/flights"], JAN_1, JAN_1, instance=instance, resources=resources)
        beside = materialize_days(["cleaned/flights"], JAN_2, JAN_2, instance=instance, resources=resources)
        with pytest.raises(storage.ConcurrentWrite) as refused:
            storage.replace_days(slow, cleaned, "SELECT * FROM cleaned.flights WHERE day = ?", [JAN_1], JAN_1, JAN_1)
        assert str(refused.value).startswith(
            f"cleaned.flights: days 2013-01-01..2013-01-01 were replaced at the same time by run {other.run_id} "
            "(2013-01-01..2013-01-01, version 1);")
        assert beside.run_id not in str(refused.value)  # a commit of other days is not what it conflicted with
        # a day the other run did not touch commits from the same stale read
        storage.replace_days(slow, cleaned, "SELECT * FROM cleaned.flights WHERE day = ?", [JAN_3], JAN_3, JAN_3)
    assert [c["version"] for c in delta.history("cleaned.flights")] == [3, 2, 1, 0]


def launch(selection: str, partition_range: str) -> subprocess.Popen:
    return subprocess.Popen([DAGSTER, "asset", "materialize", "-m", "data_platform.definitions", "--select", selection,
                             "--partition-range", partition_range], cwd=PROJECT_ROOT, env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.real_process  # two real `dagster asset materialize` processes at the same time
def test_two_real_runs_on_one_table_commit_side_by_side_and_the_same_days_hold_one_set_of_rows(
        platform_home, instance, resources):
    last = dt.date(2013, 1, 8)
    materialize_days(["raw/flights", "cleaned/flights"], JAN_1, last, instance=instance, resources=resources)
    reference = cleaned_stats(JAN_1, last)
    # different days of one table
    runs = [launch("cleaned/flights", "2013-01-01...2013-01-04"), launch("cleaned/flights", "2013-01-05...2013-01-08")]
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    commits = delta.history("cleaned.flights")[:2]
    assert {c["days"] for c in commits} == {"2013-01-01..2013-01-04", "2013-01-05..2013-01-08"}
    assert len({c["run_id"] for c in commits}) == 2
    assert cleaned_stats(JAN_1, last) == reference
    # the same days, twice at once: whichever commits second re-runs on top of the first (or is
    # refused and retried); never a mix or a duplicate
    runs = [launch("cleaned/flights", "2013-01-01...2013-01-04") for _ in range(2)]
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert cleaned_stats(JAN_1, last) == reference
    with storage.connection() as conn:
        key = ", ".join(dataset("flights").cleaned.unique)
        rows, keys = conn.execute(f"SELECT count(*), count(DISTINCT ({key})) FROM cleaned.flights").fetchall()[0]
    assert rows == keys == sum(count for count, _ in reference.values())


def test_vacuum_deletes_old_versions_past_the_retention_and_reading_one_says_so(
        platform_home, instance, resources, monkeypatch, capsys):
    materialize_days(["raw/flights", "cleaned/flights"], JAN_1, JAN_3, instance=instance, resources=resources)
    materialize_days(["cleaned/flights"], JAN_1, JAN_3, instance=instance, resources=resources)  # version 1
    newest = cleaned_stats()
    assert main(["table", "vacuum", "cleaned.flights"]) == 0  # default retention (30 days): nothing is old enough
    assert cleaned_stats(version=0) == newest
    monkeypatch.setenv("DATA_PLATFORM_RETENTION_DAYS", "0")
    capsys.readouterr()
    assert main(["table", "vacuum", "cleaned.flights"]) == 0
    assert "cleaned.flights: 3 file(s) deleted" in capsys.readouterr().out
    assert main(["table", "show", "cleaned.flights", "--version", "0"]) == 1
    assert "version 0 of cleaned.flights can no longer be read: 3 of its 3 file(s) were removed by a vacuum" \
        in capsys.readouterr().err
    assert cleaned_stats() == newest


def test_a_home_written_before_the_delta_tables_is_refused_until_migrated_with_equal_contents(
        platform_home, instance, resources, capsys):
    import shutil

    from data_platform.runner import materialize_unpartitioned

    materialize_days(["raw/flights", "cleaned/flights"], JAN_1, JAN_3, instance=instance, resources=resources)
    materialize_unpartitioned(["raw/airports", "cleaned/airports"], instance=instance, resources=resources)

    def contents():
        with storage.connection() as conn:
            return {name: conn.execute(f"SELECT count(*), md5(string_agg(md5(CAST(t AS VARCHAR)), '' ORDER BY "
                                       f"md5(CAST(t AS VARCHAR)))) FROM {name} t").fetchall()
                    for name in storage.stored_tables(conn)}

    before = contents()
    # the layout written before the Delta tables: one DuckDB file, a schema per layer
    old = platform_home / "warehouse.duckdb"
    with storage.connection() as conn:
        conn.execute(f"ATTACH '{old}' AS old")
        for name in storage.stored_tables(conn):
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS old.{name.split('.')[0]}")
            conn.execute(f"CREATE TABLE old.{name} AS SELECT * FROM {name}")
        conn.execute("DETACH old")
    shutil.rmtree(platform_home / "tables")

    refused = materialize_days(["cleaned/flights"], JAN_1, JAN_3, instance=instance, resources=resources,
                               raise_on_error=False)
    assert not refused.success
    [failure] = [e for e in refused.all_events if e.is_step_failure]
    assert "Run `python -m data_platform table migrate` once" in failure.step_failure_data.user_failure_data.description
    assert main(["table", "list"]) == 1  # the command line is refused as well
    assert "table migrate" in capsys.readouterr().err

    assert main(["table", "migrate"]) == 0
    assert "per-day row counts and content hashes equal" in capsys.readouterr().out
    assert contents() == before
    assert not old.exists() and (platform_home / "warehouse.duckdb.migrated").exists()

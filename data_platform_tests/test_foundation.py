"""The foundation: raw and cleaned daily assets on the bundled data and on a landing directory."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from dagster import DagsterInstance

from data_platform import storage
from data_platform.resources import build_resources
from data_platform.runner import materialize_days
from data_platform.ingest import SourceResource, source_columns
from data_platform.storage.delta import history

DAILY = ["raw/flights", "raw/weather", "cleaned/flights", "cleaned/weather"]


def materializations(result, asset: str) -> dict[str, object]:
    """Partition key -> materialization of `asset` ("layer/name") in a run result."""
    return {
        event.materialization.partition: event.materialization
        for event in result.get_asset_materialization_events()
        if event.materialization.asset_key.to_user_string() == asset
    }


def metadata_value(materialization, name: str):
    return materialization.metadata[name].value


def test_january_in_one_run_has_every_flight_and_conserves_rows(instance, resources, warehouse):
    result = materialize_days(DAILY, "2013-01-01", "2013-01-31", instance=instance, resources=resources)

    assert result.success
    with warehouse() as conn:
        raw = conn.execute("SELECT count(*) FROM raw.flights").fetchone()[0]
        cleaned = conn.execute("SELECT count(*) FROM cleaned.flights").fetchone()[0]
        quarantined = conn.execute("SELECT count(*) FROM quarantine.flights").fetchone()[0]
        dates = conn.execute("SELECT min(day), max(day), count(DISTINCT day) FROM cleaned.flights").fetchone()
        first_utc = conn.execute(
            "SELECT sched_dep_utc FROM cleaned.flights WHERE carrier = 'UA' AND flight = 1545 AND day = DATE '2013-01-01'"
        ).fetchone()[0]
    assert raw == 27_004
    assert dates == (dt.date(2013, 1, 1), dt.date(2013, 1, 31), 31)
    # 05:15 local on 1 January (EST, UTC-5) is 10:15 UTC.
    assert first_utc == pd.Timestamp("2013-01-01 10:15", tz="UTC")

    raw_events = materializations(result, "raw/flights")
    cleaned_events = materializations(result, "cleaned/flights")
    assert len(raw_events) == len(cleaned_events) == 31
    assert sum(metadata_value(m, "dagster/row_count") for m in raw_events.values()) == 27_004
    assert metadata_value(raw_events["2013-01-01"], "dagster/row_count") == 842

    # Per day, counted in the tables: every raw row is cleaned, quarantined or an exact duplicate
    # of a cleaned row (same key, same source values), and the metadata says the same.
    with warehouse() as conn:
        counted = {str(day): counts for day, *counts in conn.execute(
            """
            WITH raw_days AS (SELECT day, count(*) AS n FROM raw.flights GROUP BY day),
                 cleaned_days AS (SELECT day, count(*) AS n FROM cleaned.flights GROUP BY day),
                 quarantined_days AS (SELECT day, count(*) AS n FROM quarantine.flights GROUP BY day),
                 source_rows AS (SELECT day, _source_uri, _source_row FROM raw.flights
                                 EXCEPT SELECT day, _source_uri, _source_row FROM quarantine.flights),
                 distinct_days AS (
                     SELECT day, count(*) AS n FROM (
                         SELECT DISTINCT r.* EXCLUDE (_source_uri, _source_row, _ingested_at, _run_id)
                         FROM raw.flights r JOIN source_rows USING (day, _source_uri, _source_row))
                     GROUP BY day)
            SELECT day, raw_days.n, coalesce(cleaned_days.n, 0), coalesce(quarantined_days.n, 0), distinct_days.n
            FROM raw_days LEFT JOIN cleaned_days USING (day) LEFT JOIN quarantined_days USING (day)
                 LEFT JOIN distinct_days USING (day)
            ORDER BY day
            """).fetchall()}
    assert sorted(counted) == sorted(cleaned_events)
    for day, (raw_rows, cleaned_rows, quarantined_rows, distinct_kept) in counted.items():
        event = cleaned_events[day]
        duplicates = raw_rows - quarantined_rows - distinct_kept
        assert cleaned_rows == distinct_kept, day
        assert raw_rows == cleaned_rows + quarantined_rows + duplicates, day
        assert metadata_value(raw_events[day], "dagster/row_count") == metadata_value(event, "raw_rows") == raw_rows, day
        assert metadata_value(event, "dagster/row_count") == cleaned_rows, day
        assert metadata_value(event, "quarantined_rows") == quarantined_rows, day
        assert metadata_value(event, "duplicates_removed") == duplicates, day
    assert sum(counts[1] for counts in counted.values()) == cleaned
    assert sum(counts[2] for counts in counted.values()) == quarantined


def test_rerunning_a_partition_keeps_rows_and_data_version(instance, resources, warehouse):
    first = materialize_days(DAILY, "2013-01-05", instance=instance, resources=resources)
    with warehouse() as conn:
        before = conn.execute("SELECT * EXCLUDE (_ingested_at, _run_id) FROM raw.flights ORDER BY _source_row").df()
    second = materialize_days(DAILY, "2013-01-05", instance=instance, resources=resources)
    with warehouse() as conn:
        after = conn.execute("SELECT * EXCLUDE (_ingested_at, _run_id) FROM raw.flights ORDER BY _source_row").df()
        runs = conn.execute("SELECT DISTINCT _run_id FROM raw.flights").fetchall()
        cleaned_rows = conn.execute("SELECT count(*) FROM cleaned.flights").fetchone()[0]

    assert len(after) == len(before) == 720  # a Saturday
    pd.testing.assert_frame_equal(before, after)
    assert runs == [(second.run_id,)]  # the re-run replaced the rows, it did not add to them
    assert cleaned_rows == 720
    for asset in DAILY:
        version_1 = materializations(first, asset)["2013-01-05"].tags["dagster/data_version"]
        version_2 = materializations(second, asset)["2013-01-05"].tags["dagster/data_version"]
        assert version_1 == version_2, asset


def test_range_run_equals_single_partition_runs(tmp_path, monkeypatch, platform_home, instance, resources, warehouse):
    ranged = materialize_days(DAILY, "2013-01-01", "2013-01-03", instance=instance, resources=resources)
    with warehouse() as conn:
        ranged_rows = conn.execute("SELECT * FROM cleaned.flights ORDER BY ALL").df()

    other_home = tmp_path / "other"
    monkeypatch.setenv("DATA_PLATFORM_HOME", str(other_home))
    singles = {}
    with DagsterInstance.ephemeral() as other_instance:
        for day in ("2013-01-01", "2013-01-02", "2013-01-03"):
            singles[day] = materialize_days(DAILY, day, instance=other_instance, resources=build_resources())
    with storage.connection() as conn:
        single_rows = conn.execute("SELECT * FROM cleaned.flights ORDER BY ALL").df()
    # Each home holds its own tables: the single-day runs committed in the other home only.
    assert storage.table_uri("cleaned.flights") == (other_home / "tables" / "cleaned" / "flights").as_uri()
    assert [commit["run_id"] for commit in history("cleaned.flights")] == [
        singles[day].run_id for day in reversed(singles)]
    monkeypatch.setenv("DATA_PLATFORM_HOME", str(platform_home))
    assert [commit["run_id"] for commit in history("cleaned.flights")] == [ranged.run_id]

    pd.testing.assert_frame_equal(ranged_rows, single_rows)
    for asset in DAILY:
        for day, result in singles.items():
            assert (
                materializations(ranged, asset)[day].metadata["partition_data_version"]
                == materializations(result, asset)[day].metadata["partition_data_version"]
            )


def test_sampling_is_deterministic_and_keeps_joins_consistent():
    full = SourceResource().read_daily("flights", dt.date(2013, 1, 1), dt.date(2013, 1, 7))
    sampled = SourceResource(sample_fraction=0.25).read_daily("flights", dt.date(2013, 1, 1), dt.date(2013, 1, 7))
    again = SourceResource(sample_fraction=0.25).read_daily("flights", dt.date(2013, 1, 1), dt.date(2013, 1, 7))
    weather = SourceResource(sample_fraction=0.25).read_daily("weather", dt.date(2013, 1, 1), dt.date(2013, 1, 7))

    pd.testing.assert_frame_equal(sampled, again)
    assert 0.15 < len(sampled) / len(full) < 0.35
    # The same scheduled flights every day: a flight number is either always in or always out.
    key = ["carrier", "flight"]
    sampled_days = sampled.groupby(key)["day"].nunique()
    assert (sampled_days == full.groupby(key)["day"].nunique().loc[sampled_days.index]).all()
    assert len(full.merge(sampled_days.reset_index()[key], on=key)) == len(sampled)
    # Weather is the lookup side of every flight: it is never sampled away, so a sampled flight
    # finds its weather exactly as often as flights do in the full data.
    full_weather = SourceResource().read_daily("weather", dt.date(2013, 1, 1), dt.date(2013, 1, 7))
    pd.testing.assert_frame_equal(weather, full_weather)

    def weather_match_rate(flights: pd.DataFrame) -> float:
        joined = flights.merge(weather[["origin", "time_hour"]], on=["origin", "time_hour"], how="left", indicator=True)
        return (joined["_merge"] == "both").mean()

    assert abs(weather_match_rate(sampled) - weather_match_rate(full)) < 0.01


def write_landing_day(landing: Path, table: str, day: str, suffix: str = ".csv") -> pd.DataFrame:
    """Write one real day of the bundled data as a landing file with the source's columns."""
    return write_landing_days(landing, table, day, day, suffix)[day]


def write_landing_days(landing: Path, table: str, first: str, last: str, suffix: str = ".csv") -> dict[str, pd.DataFrame]:
    """`write_landing_day` for every day of first..last, from one read of the bundled data (a read
    costs about a second however few days it returns); the frames written, by day."""
    from data_platform.partitions import days_between

    read = SourceResource().read_daily(table, dt.date.fromisoformat(first), dt.date.fromisoformat(last))
    folder = landing / table
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for day in days_between(dt.date.fromisoformat(first), dt.date.fromisoformat(last)):
        frame = read[read["day"] == day].reset_index(drop=True)
        frame = frame.drop(columns=["day"]).rename(columns={"day_of_month": "day"})[source_columns(table)]
        if suffix == ".csv":
            frame.to_csv(folder / f"{day}.csv", index=False, na_rep="NA")
        else:
            frame.to_parquet(folder / f"{day}.parquet", index=False)
        written[day.isoformat()] = frame
    return written


@pytest.fixture
def landing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, platform_home: Path) -> Path:
    landing_dir = tmp_path / "landing"
    for day, suffix in (("2013-01-01", ".csv"), ("2013-01-02", ".parquet")):
        write_landing_day(landing_dir, "flights", day, suffix)
        write_landing_day(landing_dir, "weather", day, suffix)
    monkeypatch.setenv("DATA_PLATFORM_LANDING_DIR", str(landing_dir))
    return landing_dir


def test_landing_directory_gives_the_same_tables_as_the_bundled_data(landing, instance, warehouse):
    result = materialize_days(DAILY, "2013-01-01", "2013-01-02", instance=instance, resources=build_resources())

    assert result.success
    with warehouse() as conn:
        landed = conn.execute(
            "SELECT * FROM cleaned.flights ORDER BY carrier, flight, origin, day"
        ).df()
        uris = {row[0].rsplit("/", 1)[-1] for row in conn.execute("SELECT DISTINCT _source_uri FROM raw.flights").fetchall()}
    assert uris == {"2013-01-01.csv", "2013-01-02.parquet"}
    assert len(landed) == 842 + 943
    assert materializations(result, "cleaned/flights")["2013-01-02"].metadata["quarantined_rows"].value == 0


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda path: pd.read_csv(path).drop(columns=["carrier"]).to_csv(path, index=False), "missing required column(s) ['carrier']"),
        (lambda path: path.write_bytes(b"year,month\n2013,\xff\xfe\n"), "not UTF-8"),
        (lambda path: path.write_bytes(b""), "file is empty"),
        (lambda path: path.unlink(), "no file for 2013-01-01"),
    ],
    ids=["missing-column", "not-utf8", "empty-file", "missing-day"],
)
def test_a_bad_landing_file_fails_by_name_and_keeps_the_stored_partition(landing, instance, warehouse, corrupt, message):
    good = materialize_days(DAILY, "2013-01-01", instance=instance, resources=build_resources())
    assert good.success
    with warehouse() as conn:
        before = conn.execute("SELECT * FROM raw.flights ORDER BY _source_row").df()

    bad_file = landing / "flights" / "2013-01-01.csv"
    corrupt(bad_file)
    failed = materialize_days(DAILY, "2013-01-01", instance=instance, resources=build_resources(), raise_on_error=False)

    assert not failed.success
    failure = next(event for event in failed.all_events if event.event_type_value == "STEP_FAILURE")
    error = failure.event_specific_data.error.message
    assert str(bad_file) in error and message in error
    with warehouse() as conn:
        after = conn.execute("SELECT * FROM raw.flights ORDER BY _source_row").df()
    pd.testing.assert_frame_equal(before, after)
    assert len(after) == 842


def test_landing_paths_are_confined(tmp_path: Path):
    outside = tmp_path / "outside"
    write_landing_day(outside, "flights", "2013-01-01")
    landing_dir = tmp_path / "landing"
    (landing_dir / "flights").mkdir(parents=True)
    (landing_dir / "flights" / "2013-01-01.csv").symlink_to(outside / "flights" / "2013-01-01.csv")

    with pytest.raises(Exception, match="outside"):
        SourceResource(landing_dir=str(landing_dir)).read_daily("flights", dt.date(2013, 1, 1), dt.date(2013, 1, 1))

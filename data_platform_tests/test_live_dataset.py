"""A live feed declared by a contract alone: partitions up to today, this year's files accepted, and
a day the source owes by its ODCS latency SLA is expected even when no file came."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb

from data_platform.cleaning import clean
from data_platform.datasets import registry
from data_platform.ingest import SourceResource
from data_platform.partitions import dataset_partitions

CONTRACT = """\
apiVersion: v3.1.0
kind: DataContract
id: urn:test:readings
name: readings
version: 0.1.0
status: active
slaProperties:
  - {property: latency, value: 6, unit: h}
schema:
  - name: readings
    customProperties:
      - property: source
        value: {type: landing}
      - property: partitioning
        value: {cadence: daily, start: "2026-11-01", timezone: UTC}
    properties:
      - {name: station, logicalType: string, required: true, primaryKey: true, primaryKeyPosition: 1}
      - {name: observed_at, logicalType: timestamp, required: true, primaryKey: true, primaryKeyPosition: 2}
      - {name: level, logicalType: number, logicalTypeOptions: {minimum: 0, maximum: 100}}
"""
DAYS = [dt.date(2026, 11, 25), dt.date(2026, 11, 26), dt.date(2026, 11, 27)]


def test_a_live_landing_dataset_accepts_this_years_files_and_expects_what_its_sla_owes(tmp_path: Path, monkeypatch, platform_home):
    contracts, landing = tmp_path / "contracts", tmp_path / "landing"
    contracts.mkdir()
    (contracts / "readings.odcs.yaml").write_text(CONTRACT)
    monkeypatch.setenv("DATA_PLATFORM_DATASETS_DIR", str(contracts))
    folder = landing / "readings"
    folder.mkdir(parents=True)
    for day in DAYS:
        rows = [f"S{n},{day}T{hour:02d}:00:00Z,{10 * n + hour / 10}" for n in (1, 2) for hour in (0, 12)]
        (folder / f"{day}.csv").write_text("station,observed_at,level\n" + "\n".join(rows) + "\n")

    readings = registry()["readings"]
    today = dt.datetime.now(dt.timezone.utc).date()
    keys = dataset_partitions(readings).get_partition_keys()
    assert keys[0] == "2026-11-01" and keys[-1] == today.isoformat()  # a live feed runs up to today

    source = SourceResource(landing_dir=str(landing))
    with duckdb.connect(str(platform_home / "warehouse.duckdb")) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        assert source.ingest(conn, readings, DAYS[0], DAYS[-1], "run") == 12
        outcome = clean(conn, readings, DAYS[0], DAYS[-1], "run")
        stored = conn.execute("SELECT day, count(*) FROM cleaned.readings GROUP BY day ORDER BY day").fetchall()
    assert stored == [(day, 4) for day in DAYS]
    assert sum(outcome["quarantined_rows"].values()) == 0

    # The newest file is 2026-11-27, but with a 6 h latency the source owes every finished day.
    mark = source.high_water(readings)
    now = dt.datetime.now(dt.timezone.utc)
    owed = (now - dt.timedelta(hours=6)).date() - dt.timedelta(days=1)
    assert mark.day == max(owed, DAYS[-1])
    if owed > DAYS[-1]:
        assert "not delivered" in mark.uri
        assert mark.available_at == dt.datetime.combine(owed + dt.timedelta(days=1), dt.time(), dt.timezone.utc) \
            + dt.timedelta(hours=6)

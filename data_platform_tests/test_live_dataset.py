"""A live feed declared by a contract alone: partitions up to today, this year's files accepted, and
a day the source owes by its ODCS latency SLA is expected even when no file came."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from data_platform import storage
from data_platform.assets.raw import ingest
from data_platform.cleaning import clean
from data_platform.datasets import registry
from data_platform.ingest import HighWater, SourceResource, _sla_due
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
        value: {cadence: daily, start: "{start}", timezone: UTC}
    properties:
      - {name: station, logicalType: string, required: true, primaryKey: true, primaryKeyPosition: 1}
      - {name: observed_at, logicalType: timestamp, required: true, primaryKey: true, primaryKeyPosition: 2}
      - {name: level, logicalType: number, logicalTypeOptions: {minimum: 0, maximum: 100}}
"""
# Dates relative to today: the feed started a month ago, the last file came ten days ago.
TODAY = dt.datetime.now(dt.timezone.utc).date()
START = TODAY - dt.timedelta(days=30)
DAYS = [TODAY - dt.timedelta(days=n) for n in (12, 11, 10)]


def test_a_live_landing_dataset_accepts_this_years_files_and_expects_what_its_sla_owes(tmp_path: Path, monkeypatch, platform_home):
    contracts, landing = tmp_path / "contracts", tmp_path / "landing"
    contracts.mkdir()
    (contracts / "readings.odcs.yaml").write_text(CONTRACT.replace("{start}", START.isoformat()))
    monkeypatch.setenv("DATA_PLATFORM_DATASETS_DIR", str(contracts))
    folder = landing / "readings"
    folder.mkdir(parents=True)
    for day in DAYS:
        rows = [f"S{n},{day}T{hour:02d}:00:00Z,{10 * n + hour / 10}" for n in (1, 2) for hour in (0, 12)]
        (folder / f"{day}.csv").write_text("station,observed_at,level\n" + "\n".join(rows) + "\n")

    readings = registry()["readings"]
    today = dt.datetime.now(dt.timezone.utc).date()
    keys = dataset_partitions(readings).get_partition_keys()
    assert keys[0] == START.isoformat() and keys[-1] == today.isoformat()  # a live feed runs up to today

    source = SourceResource(landing_dir=str(landing))
    with storage.connection() as conn:
        assert ingest(conn, source, readings, DAYS[0], DAYS[-1], "run") == 12
        outcome = clean(conn, readings, DAYS[0], DAYS[-1], "run")
        stored = conn.execute("SELECT day, count(*) FROM cleaned.readings GROUP BY day ORDER BY day").fetchall()
    assert stored == [(day, 4) for day in DAYS]
    assert sum(outcome["quarantined_rows"].values()) == 0

    # The newest file is ten days old, but with a 6 h latency the source owes every finished day:
    # yesterday once 06:00 UTC has passed today, the day before until then.
    mark = source.high_water(readings)
    now = dt.datetime.now(dt.timezone.utc)
    owed = today - dt.timedelta(days=1 if now.hour >= 6 else 2)
    assert mark.day == owed and "not delivered" in mark.uri
    assert mark.available_at == dt.datetime.combine(owed + dt.timedelta(days=1), dt.time(6), dt.timezone.utc)

    # On a fixed clock: the newest file is the mark until the next day is owed, 6 h after it ended.
    delivered = HighWater(DAYS[-1], now, (folder / f"{DAYS[-1]}.csv").as_uri(), republishable=True, start=START)
    next_day_ends = dt.datetime.combine(DAYS[-1] + dt.timedelta(days=2), dt.time(), dt.timezone.utc)
    assert _sla_due(readings, delivered, now=next_day_ends + dt.timedelta(hours=5, minutes=59)) == delivered
    late = _sla_due(readings, delivered, now=next_day_ends + dt.timedelta(hours=6))
    assert late.day == DAYS[-1] + dt.timedelta(days=1) and "not delivered" in late.uri
    assert late.available_at == next_day_ends + dt.timedelta(hours=6)

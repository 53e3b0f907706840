"""The online feature store: what serving needs to assemble a flight's features, by key, in microseconds.

One interface, two backends:

* `SqliteStore` (default): a SQLite file, `$DATA_PLATFORM_HOME/online/features.sqlite`, in WAL mode so
  the service keeps reading while the `ml/online_features` asset writes. Point lookups take about
  0.03 ms.
* `RedisStore` (production): the same relations in Redis (`DATA_PLATFORM_ONLINE_STORE=redis://host:6379/0`);
  a request's lookups go in one pipelined round trip.

The store never holds anything the warehouse does not: its rows are the input relations of
`features/flight_features` (`data_platform.features`), computed by the same SQL. The service reads
only this store and the MLflow registry, never the DuckDB file (one writer at a time).

Relations (see `RELATIONS`): per as-of day, the trailing aggregates of each entity; per day, the
published schedule and its departures per origin and hour; the weather observations per origin (looked
up as the last one at or before a time); the plane registry; route distances. `meta` records the
newest day written and when.

Stdlib only at import (sqlite3); `redis` is imported when a Redis store is opened.
"""

from __future__ import annotations

import abc
import datetime as dt
import json
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from data_platform import features as F

STORE_ENV = "DATA_PLATFORM_ONLINE_STORE"
REDIS_PREFIX_ENV = "DATA_PLATFORM_ONLINE_REDIS_PREFIX"
DEFAULT_REDIS_PREFIX = "data_platform:online"


@dataclass(frozen=True)
class Relation:
    """A relation the store keeps: looked up by `keys` (after the day, when `by_day`)."""

    name: str
    keys: tuple[str, ...]
    values: tuple[str, ...]
    by_day: bool

    @property
    def columns(self) -> tuple[str, ...]:
        return (*(("day",) if self.by_day else ()), *self.keys, *self.values)


# The values of each relation are the inputs the feature declarations read from it. Their types are
# the warehouse's: SQLite columns declare none, so each value keeps the type DuckDB computed it in
# (Redis keeps JSON's), and a new input needs no edit here.
RELATIONS: dict[str, Relation] = {
    **{a.name: Relation(a.name, a.keys, tuple(a.inputs.values()), True) for a in F.AGGREGATES},
    "departures_in_hour": Relation("departures_in_hour", ("origin", "hour"), ("n",), True),
    "schedule": Relation("schedule", ("carrier", "flight", "origin"), ("dest", "tailnum", *F.SCHEDULE_INPUTS), True),
    "weather": Relation("weather", ("origin", "observed_at"), tuple(F.WEATHER_COLUMNS), True),
    "planes": Relation("planes", ("tailnum",), tuple(F.PLANE_INPUTS.values()), False),
    "routes": Relation("routes", ("origin", "dest"), ("distance",), False),
}
assert set(RELATIONS) == set(F.ONLINE_RELATIONS)


def _plain(value: Any) -> Any:
    """A value as the store keeps it: dates as ISO text, timestamps as epoch seconds."""
    if isinstance(value, dt.datetime):
        return int(value.timestamp())
    if isinstance(value, dt.date):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


class OnlineStore(abc.ABC):
    """The interface both backends implement."""

    url: str

    # --- writing (the ml/online_features asset) -----------------------------------------------
    @abc.abstractmethod
    def replace_days(self, relation: str, first: dt.date, last: dt.date, rows: Sequence[dict]) -> None:
        """Replace the rows of days first..last of a per-day relation (atomically for readers)."""
        ...

    @abc.abstractmethod
    def replace_all(self, relation: str, rows: Sequence[dict]) -> None:
        ...

    @abc.abstractmethod
    def upsert(self, relation: str, rows: Sequence[dict]) -> None:
        ...

    @abc.abstractmethod
    def set_meta(self, values: dict[str, Any]) -> None:
        ...

    # --- reading (the service, checks) ----------------------------------------------------------
    @abc.abstractmethod
    def meta(self) -> dict[str, Any]:
        ...

    @abc.abstractmethod
    def lookup(self, points: Sequence[tuple[str, tuple]], weather: Sequence[tuple[str, int]]) -> tuple[list, list]:
        """Rows for `points` ((relation, full key: day first when by day)) and, for each
        (origin, epoch seconds) of `weather`, the last observation at or before that time; None where
        nothing is stored."""
        ...

    @abc.abstractmethod
    def count(self, relation: str, day: Optional[dt.date] = None) -> int:
        ...

    @abc.abstractmethod
    def days(self, relation: str) -> list[str]:
        ...

    def close(self) -> None:
        pass


# --- SQLite ---------------------------------------------------------------------------------------


class SqliteStore(OnlineStore):
    def __init__(self, path: str | Path, readonly: bool = False):
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        if not readonly:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif not self.path.exists():
            raise FileNotFoundError(f"online store {self.path} does not exist: materialize ml/online_features")
        # One connection per thread: sqlite3 objects must not be shared across threads.
        self._local = threading.local()
        self._readonly = readonly
        if not readonly:
            self._create()

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._readonly:
                conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None,
                                       check_same_thread=False)
            else:
                conn = sqlite3.connect(self.path, isolation_level=None, timeout=60, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=60000")
            self._local.conn = conn
        return conn

    def _create(self) -> None:
        conn = self._connect()
        for relation in RELATIONS.values():
            columns = ", ".join(f'"{name}"' for name in relation.columns)
            key = ", ".join(f'"{name}"' for name in (("day",) if relation.by_day else ()) + relation.keys)
            conn.execute(f'CREATE TABLE IF NOT EXISTS "{relation.name}" ({columns}, PRIMARY KEY ({key})) WITHOUT ROWID')
        conn.execute('CREATE INDEX IF NOT EXISTS weather_lookup ON weather (origin, observed_at)')
        conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")

    def _insert(self, conn, relation: Relation, rows: Sequence[dict]) -> None:
        names = relation.columns
        sql = (f'INSERT OR REPLACE INTO "{relation.name}" ({", ".join(names)}) '
               f'VALUES ({", ".join("?" for _ in names)})')
        conn.executemany(sql, ([_plain(row[name]) for name in names] for row in rows))

    def replace_days(self, relation, first, last, rows):
        spec = RELATIONS[relation]
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(f'DELETE FROM "{relation}" WHERE day BETWEEN ? AND ?', [first.isoformat(), last.isoformat()])
            self._insert(conn, spec, rows)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def replace_all(self, relation, rows):
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(f'DELETE FROM "{relation}"')
            self._insert(conn, RELATIONS[relation], rows)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def upsert(self, relation, rows):
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            self._insert(conn, RELATIONS[relation], rows)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def set_meta(self, values):
        conn = self._connect()
        conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in values.items()])

    def meta(self):
        try:
            rows = self._connect().execute("SELECT key, value FROM meta").fetchall()
        except sqlite3.OperationalError:
            return {}
        return {key: json.loads(value) for key, value in rows}

    # Above this many lookups, one query per relation (row-value IN) beats one query per key.
    GROUPED_FROM = 40

    def lookup(self, points, weather):
        conn = self._connect()
        if len(points) >= self.GROUPED_FROM:
            found = self._grouped(conn, points)
        else:
            found = []
            for relation, key in points:
                spec = RELATIONS[relation]
                where = " AND ".join(f'"{name}" = ?' for name in (("day",) if spec.by_day else ()) + spec.keys)
                row = conn.execute(f'SELECT {", ".join(spec.values)} FROM "{relation}" WHERE {where}', key).fetchone()
                found.append(None if row is None else dict(zip(spec.values, row)))
        columns = ("observed_at", *F.WEATHER_COLUMNS)
        if len(weather) > 1:
            distinct = list(dict.fromkeys(weather))
            values = ", ".join("(?, ?, ?)" for _ in distinct)
            rows = conn.execute(
                f"WITH q(i, origin, t) AS (VALUES {values}) "
                f"SELECT q.i, {', '.join('w.' + c for c in columns)} FROM q JOIN weather w ON w.origin = q.origin "
                "AND w.observed_at = (SELECT max(observed_at) FROM weather WHERE origin = q.origin AND observed_at <= q.t)",
                [item for i, (origin, epoch) in enumerate(distinct) for item in (i, origin, epoch)]).fetchall()
            by_query = {distinct[row[0]]: dict(zip(columns, row[1:])) for row in rows}
            return found, [by_query.get(query) for query in weather]
        observations = []
        for origin, epoch in weather:
            row = conn.execute(
                f"SELECT {', '.join(columns)} FROM weather WHERE origin = ? AND observed_at <= ? "
                "ORDER BY observed_at DESC LIMIT 1", [origin, epoch]).fetchone()
            observations.append(None if row is None else dict(zip(columns, row)))
        return found, observations

    def _grouped(self, conn, points) -> list:
        by_relation: dict[str, list[tuple]] = {}
        for relation, key in points:
            by_relation.setdefault(relation, []).append(tuple(key))
        rows: dict[tuple[str, tuple], dict] = {}
        for relation, keys in by_relation.items():
            spec = RELATIONS[relation]
            names = (("day",) if spec.by_day else ()) + spec.keys
            distinct = [key for key in dict.fromkeys(keys) if None not in key]
            for start in range(0, len(distinct), 500):
                chunk = distinct[start:start + 500]
                tuples = ", ".join("(" + ", ".join("?" for _ in names) + ")" for _ in chunk)
                aliases = [f"k{i}" for i in range(len(names))]
                on = " AND ".join(f'r."{name}" = q.{alias}' for name, alias in zip(names, aliases))
                # The keys drive the loop: one primary-key probe per key.
                query = (f"WITH q({', '.join(aliases)}) AS (VALUES {tuples}) "
                         f'SELECT {", ".join("r." + n for n in names + spec.values)} FROM q CROSS JOIN "{relation}" r ON {on}')
                for row in conn.execute(query, [item for key in chunk for item in key]):
                    rows[(relation, row[:len(names)])] = dict(zip(spec.values, row[len(names):]))
        return [rows.get((relation, tuple(key))) for relation, key in points]

    def count(self, relation, day=None):
        conn = self._connect()
        if day is None:
            return conn.execute(f'SELECT count(*) FROM "{relation}"').fetchone()[0]
        return conn.execute(f'SELECT count(*) FROM "{relation}" WHERE day = ?', [day.isoformat()]).fetchone()[0]

    def days(self, relation):
        return [row[0] for row in self._connect().execute(f'SELECT DISTINCT day FROM "{relation}" ORDER BY day')]

    def close(self):
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


# --- Redis ----------------------------------------------------------------------------------------


def _key_text(values: Iterable[Any]) -> str:
    return "|".join("" if value is None else str(_plain(value)) for value in values)


class RedisStore(OnlineStore):
    """Rows as JSON strings under `<prefix>:<relation>:<key>`; per-day index sets make a day's rows
    replaceable in one MULTI/EXEC transaction; weather per origin in a sorted set scored by time."""

    WRITE_CHUNK = 5000

    def __init__(self, url: str, prefix: str = DEFAULT_REDIS_PREFIX):
        import redis

        self.url = url
        self.prefix = prefix
        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)

    def _row_key(self, relation: str, key: Sequence[Any]) -> str:
        return f"{self.prefix}:{relation}:{_key_text(key)}"

    def _index(self, relation: str, day: str) -> str:
        return f"{self.prefix}:index:{relation}:{day}"

    def _weather_key(self, origin: str) -> str:
        return f"{self.prefix}:weather:{origin}"

    def _days_key(self, relation: str) -> str:
        return f"{self.prefix}:days:{relation}"

    def replace_days(self, relation, first, last, rows):
        spec = RELATIONS[relation]
        by_day: dict[str, list[dict]] = {}
        for row in rows:
            by_day.setdefault(_plain(row["day"]), []).append(row)
        day = first
        while day <= last:
            self._replace_day(spec, day.isoformat(), by_day.get(day.isoformat(), []))
            day += dt.timedelta(days=1)

    def _replace_day(self, spec: Relation, day: str, rows: list[dict]) -> None:
        """One day of one relation in one transaction: readers see the old rows or the new ones."""
        index = self._index(spec.name, day)
        old = self.client.smembers(index)
        pipe = self.client.pipeline(transaction=True)
        if spec.name == "weather":
            for member in old:
                origin, _ = member.decode().split("|", 1)
                pipe.zrem(self._weather_key(origin), member)
        elif old:
            pipe.delete(*old)
        pipe.delete(index)
        for row in rows:
            values = {name: _plain(row[name]) for name in spec.columns}
            if spec.name == "weather":
                member = f"{values['origin']}|{json.dumps(values, separators=(',', ':'))}"
                pipe.zadd(self._weather_key(values["origin"]), {member: values["observed_at"]})
                pipe.sadd(index, member)
            else:
                key = self._row_key(spec.name, [day, *(values[name] for name in spec.keys)])
                pipe.set(key, json.dumps({name: values[name] for name in spec.values}, separators=(",", ":")))
                pipe.sadd(index, key)
        if rows:
            pipe.sadd(self._days_key(spec.name), day)
        else:
            pipe.srem(self._days_key(spec.name), day)
        pipe.execute()

    def _write_all(self, spec: Relation, rows: Sequence[dict], replace: bool) -> None:
        index = self._index(spec.name, "all")
        pipe = self.client.pipeline(transaction=True)
        if replace:
            old = self.client.smembers(index)
            if old:
                pipe.delete(*old)
            pipe.delete(index)
        for row in rows:
            values = {name: _plain(row[name]) for name in spec.columns}
            key = self._row_key(spec.name, [values[name] for name in spec.keys])
            pipe.set(key, json.dumps({name: values[name] for name in spec.values}, separators=(",", ":")))
            pipe.sadd(index, key)
        pipe.execute()

    def replace_all(self, relation, rows):
        self._write_all(RELATIONS[relation], rows, replace=True)

    def upsert(self, relation, rows):
        self._write_all(RELATIONS[relation], rows, replace=False)

    def set_meta(self, values):
        self.client.hset(f"{self.prefix}:meta", mapping={k: json.dumps(v) for k, v in values.items()})

    def meta(self):
        return {k.decode(): json.loads(v) for k, v in self.client.hgetall(f"{self.prefix}:meta").items()}

    def lookup(self, points, weather):
        pipe = self.client.pipeline(transaction=False)
        if points:
            pipe.mget([self._row_key(relation, key) for relation, key in points])
        for origin, epoch in weather:
            pipe.zrevrangebyscore(self._weather_key(origin), epoch, "-inf", start=0, num=1)
        results = pipe.execute() if (points or weather) else []
        found = []
        if points:
            for (relation, _), raw in zip(points, results[0]):
                found.append(None if raw is None else json.loads(raw))
            results = results[1:]
        observations = []
        for members in results:
            if not members:
                observations.append(None)
                continue
            values = json.loads(members[0].decode().split("|", 1)[1])
            observations.append({name: values[name] for name in ("observed_at", *F.WEATHER_COLUMNS)})
        return found, observations

    def count(self, relation, day=None):
        return self.client.scard(self._index(relation, day.isoformat() if day else "all"))

    def days(self, relation):
        return sorted(day.decode() for day in self.client.smembers(self._days_key(relation)))

    def close(self):
        self.client.close()


# --- choosing a backend ---------------------------------------------------------------------------


def default_url() -> str:
    from data_platform.settings import home_path

    return os.environ.get(STORE_ENV) or f"sqlite:///{home_path('online', 'features.sqlite')}"


def open_store(url: Optional[str] = None, readonly: bool = False) -> OnlineStore:
    """The store at `url` (`sqlite:///path` or `redis://host:port/db`); default from the environment."""
    url = url or default_url()
    if url.startswith("sqlite:///"):
        return SqliteStore(url[len("sqlite:///"):], readonly=readonly)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore(url, prefix=os.environ.get(REDIS_PREFIX_ENV, DEFAULT_REDIS_PREFIX))
    raise ValueError(f"{STORE_ENV} must be sqlite:///<path> or redis://host:port/db, got {url!r}")


def redacted(url: str) -> str:
    """The URL without a password, for logs and metadata."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url

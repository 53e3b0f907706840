"""A flight's features at request time: look its inputs up in the online store, evaluate the declarations.

The inputs are the same columns `FEATURE_QUERY` joins offline (`features.FEATURE_INPUTS`), matched by
the same keys: what the request says of the flight (`features.REQUEST_INPUTS`), the rest of its
published schedule, the trailing aggregates of its entities as of its day, the schedule count of its
origin and local hour, the plane, and the last origin observation at or before its cut-off. The
features are then the feature declarations (`features.DECLARATIONS`) compiled to Python.

Staleness: the store knows days up to `newest_day` (its newest feature partition), and the aggregates
as of the day after it. A flight later than that gets the newest aggregates (as of `newest_day + 1`),
no schedule count (that day's schedule is not in the store), and whatever weather was observed last;
the answer says how far its cut-off is past the end of the newest day (`stale_seconds`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence
from zoneinfo import ZoneInfo

from data_platform import features as F
from data_platform.feature_expressions import compile_python
from data_platform.online.store import OnlineStore

LOCAL = ZoneInfo(F.LOCAL_TIMEZONE)
# The feature declarations compiled to one Python function (the offline asset compiles them to SQL).
compute_features = compile_python(F.FEATURE_DEFINITIONS)
UTC = dt.timezone.utc


@dataclass(frozen=True)
class FlightRequest:
    """What a caller knows about a flight: its published identity and scheduled departure."""

    carrier: str
    flight: int
    origin: str
    dest: str
    scheduled_departure: dt.datetime  # timezone-aware
    tailnum: Optional[str] = None


@dataclass
class Assembled:
    features: dict[str, Any]
    cutoff: dt.datetime
    stale_seconds: float
    flags: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class StoreState:
    """What the store covers, read from its meta once per request (or batch)."""

    newest_day: Optional[dt.date]
    oldest_day: Optional[dt.date]
    updated_at: Optional[str] = None

    @property
    def as_of(self) -> Optional[dt.datetime]:
        """End of the newest stored day (local midnight after it), in UTC."""
        if self.newest_day is None:
            return None
        return dt.datetime.combine(self.newest_day + dt.timedelta(days=1), dt.time(), LOCAL).astimezone(UTC)


# A scheduled departure further than this from the store's days is refused (422), not scored:
# airlines publish schedules about 11 months ahead, so a flight a year past the newest data, or a
# year before the oldest, is a client's mistake (a wrong year), not a flight to score.
HORIZON_DAYS = 366


def outside_horizon(state: StoreState, departure: dt.datetime, now: Optional[dt.datetime] = None) -> Optional[str]:
    """Why `departure` is too far from the store's days to be scored (None when it is not): more than
    HORIZON_DAYS after the store's as-of time (now, for an empty store) or before its oldest day."""
    horizon = dt.timedelta(days=HORIZON_DAYS)
    newest = state.as_of or now or dt.datetime.now(UTC)
    oldest = (dt.datetime.combine(state.oldest_day, dt.time(), LOCAL).astimezone(UTC) if state.oldest_day
              else newest - dt.timedelta(days=1))
    if departure > newest + horizon:
        return (f"more than {HORIZON_DAYS} days after the online store's newest data ({newest.isoformat()}): "
                "no schedule is published that far ahead")
    if departure < oldest - horizon:
        return f"more than {HORIZON_DAYS} days before the online store's oldest day ({oldest.date().isoformat()})"
    return None


def store_state(store: OnlineStore) -> StoreState:
    meta = store.meta()
    newest, oldest = meta.get("newest_day"), meta.get("oldest_day")
    return StoreState(dt.date.fromisoformat(newest) if newest else None,
                      dt.date.fromisoformat(oldest) if oldest else None, meta.get("updated_at"))


class LookupCache:
    """Rows already looked up, valid while the store is not rewritten: the cache is emptied whenever
    the store's `updated_at` (written by `ml/online_features` after each write) changes. Small
    relations (carriers, origins, destinations, planes, routes, schedule counts) are then read from
    memory; at most `size` rows are kept."""

    def __init__(self, size: int = 200_000):
        self.size = size
        self.generation: Optional[str] = None
        self.rows: dict = {}

    def lookup(self, store: OnlineStore, state: StoreState, points: list, weather: list) -> tuple[list, list]:
        if state.updated_at != self.generation or len(self.rows) > self.size:
            self.rows = {}
            self.generation = state.updated_at
        missing = list(dict.fromkeys(point for point in points if point not in self.rows))
        found, observations = store.lookup(missing, weather)
        self.rows.update(zip(missing, found))
        return [self.rows[point] for point in points], observations


class Holidays:
    """US federal holidays, computed once for the years around the store (pandas only here)."""

    def __init__(self, first_year: int = 2000, last_year: int = 2040):
        self.days = sorted(F.federal_holidays(dt.date(first_year, 1, 1), dt.date(last_year, 12, 31)))


def _points(request: FlightRequest, day: dt.date, hour: int, aggregate_day: dt.date, tailnum: Optional[str]) -> list:
    values = {"carrier": request.carrier, "flight": request.flight, "origin": request.origin, "dest": request.dest}
    points = [(a.name, (aggregate_day.isoformat(), *(values[key] for key in a.keys))) for a in F.AGGREGATES]
    points.append(("departures_in_hour", (day.isoformat(), request.origin, hour)))
    points.append(("schedule", (day.isoformat(), request.carrier, request.flight, request.origin)))
    points.append(("routes", (request.origin, request.dest)))
    points.append(("planes", (tailnum,)))
    return points


def assemble(store: OnlineStore, requests: Sequence[FlightRequest], holidays: Holidays,
             state: Optional[StoreState] = None, cache: Optional[LookupCache] = None) -> list[Assembled]:
    """Features of each request, as of its cut-off, from the store (one lookup round per call)."""
    state = state or store_state(store)
    as_of = state.as_of
    plans = []
    points, weather = [], []
    for request in requests:
        departure = request.scheduled_departure.astimezone(UTC)
        local = departure.astimezone(LOCAL)
        day = local.date()
        cutoff = F.CUTOFF.evaluate({"sched_dep_utc": departure})
        newest_aggregates = state.newest_day + dt.timedelta(days=1) if state.newest_day else day
        aggregate_day = min(day, newest_aggregates)
        request_points = _points(request, day, local.hour, aggregate_day, request.tailnum)
        plans.append((request, departure, local, day, cutoff, aggregate_day, len(points)))
        points.extend(request_points)
        weather.append((request.origin, int(cutoff.timestamp())))
    if cache is not None:
        found, observations = cache.lookup(store, state, points, weather)
    else:
        found, observations = store.lookup(points, weather)

    results = []
    per_request = len(F.AGGREGATES) + 4
    for index, (request, departure, local, day, cutoff, aggregate_day, start) in enumerate(plans):
        rows = found[start:start + per_request]
        aggregates, (departures, schedule, route, plane) = rows[:len(F.AGGREGATES)], rows[len(F.AGGREGATES):]
        flags = []
        if schedule is not None and schedule["dest"] != request.dest:
            flags.append(f"dest {request.dest} differs from the published schedule ({schedule['dest']}): "
                         "route distance used, scheduled arrival unknown")
            schedule = None
        tailnum = request.tailnum
        if tailnum is None and schedule is not None and schedule["tailnum"] is not None:
            tailnum = schedule["tailnum"]
            flags.append(f"tailnum {tailnum} taken from the published schedule")
            plane = store.lookup([("planes", (tailnum,))], [])[0][0]
        if schedule is None:
            flags.append("flight not in the published schedule of its day: scheduled arrival and departures "
                         "in the hour unknown" if departures is None else
                         "flight not in the published schedule of its day: scheduled arrival unknown")
        if tailnum is not None and plane is None:
            flags.append(f"tailnum {tailnum} not in the plane registry")
        if route is None and schedule is None:
            flags.append(f"route {request.origin}-{request.dest} unknown: distance missing")
        inputs: dict[str, Any] = {
            "day": day, "carrier": request.carrier, "flight": request.flight, "origin": request.origin,
            "dest": request.dest, "tailnum": tailnum, "sched_dep_utc": departure,
            "hour": local.hour, "minute": local.minute,
            **{name: schedule[name] if schedule else None for name in F.SCHEDULE_INPUTS},
            "departures_in_hour": departures["n"] if departures else None,
            F.HOLIDAYS_PARAM: holidays.days,
        }
        if schedule is None and route is not None:
            inputs["distance"] = route["distance"]
        for name, column in F.PLANE_INPUTS.items():
            inputs[name] = plane[column] if plane else None
        observation = observations[index]
        for name, column in F.WEATHER_INPUTS.items():
            inputs[name] = observation[column] if observation else None
        if observation is not None:
            inputs["w_observed_at"] = dt.datetime.fromtimestamp(observation["observed_at"], UTC)
        for aggregate, row in zip(F.AGGREGATES, aggregates):
            for name, column in aggregate.inputs.items():
                inputs[name] = row[column] if row else None
        features = compute_features(inputs)
        stale = 0.0
        if as_of is not None and cutoff > as_of:
            stale = (cutoff - as_of).total_seconds()
            flags.append(f"cut-off is {stale / 3600:.1f} h after the newest data ({state.newest_day}): "
                         f"trailing rates as of {aggregate_day}, no published schedule count")
        if state.oldest_day is not None and day < state.oldest_day:
            flags.append(f"day {day} is before the online store's first day {state.oldest_day}: no history")
        results.append(Assembled(features=features, cutoff=cutoff, stale_seconds=stale, flags=flags))
    return results


def jsonable(value: Any) -> Any:
    """Dates and timestamps as ISO text (UTC); usable as `json.dumps(default=...)`."""
    if isinstance(value, dt.datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")

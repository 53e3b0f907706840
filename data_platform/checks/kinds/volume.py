"""Each day's rows against a day-of-week baseline (the contract's `volume` custom property).

Volume: a day's rows against the median of up to 4 nearest same-weekday days (±8 weeks) that are
not near a holiday. Measured on the 2013 flights with these rules: ordinary days 0.852 (Saturday
2013-12-14) .. 1.219 (Saturday 2013-11-30) of their baseline; days within a day of a US federal
holiday down to 0.648 (Thanksgiving, 634 flights), 0.676 (the day after), 0.738 (4 July).
"""

import datetime as dt
from dataclasses import dataclass
from typing import Callable, Optional

from data_platform.checks.framework import WARN, Check, Days, Evaluation, Verdict, per_partition
from data_platform.checks.kinds import CheckKind, register
from data_platform.datasets.profile import BOUNDS, object_schema

HOLIDAY_WINDOW_DAYS = 1
BASELINE_DAYS, BASELINE_WEEKS, MIN_BASELINE_DAYS = 4, 8, 2
SCHEMA = object_schema({"bounds": BOUNDS, "holidayCalendar": {"enum": ["US"]}, "holidayBounds": BOUNDS,
                        "minRows": {"type": "integer", "minimum": 0}})


@dataclass(frozen=True)
class Volume:
    bounds: tuple[float, float] = (0.8, 1.3)
    holiday_calendar: Optional[str] = None
    holiday_bounds: tuple[float, float] = (0.5, 1.3)
    min_rows: Optional[int] = None  # a floor that holds without any history (e.g. stations x hours)


def read(value: dict, dataset, problem) -> Volume:
    if not dataset.partitioned:
        problem((), "volume baselines need a partitioned dataset")
    return Volume(tuple(value.get("bounds", (0.8, 1.3))), value.get("holidayCalendar"),
                  tuple(value.get("holidayBounds", (0.5, 1.3))), value.get("minRows"))


def holidays_near(first: dt.date, last: dt.date) -> dict[dt.date, str]:
    """Days within HOLIDAY_WINDOW_DAYS of a US federal holiday, with the holiday's name."""
    from pandas.tseries.holiday import USFederalHolidayCalendar

    margin = dt.timedelta(days=HOLIDAY_WINDOW_DAYS)
    holidays = USFederalHolidayCalendar().holidays(first - margin, last + margin, return_name=True)
    near = {}
    for stamp, name in holidays.items():
        holiday = stamp.date()
        for offset in range(-HOLIDAY_WINDOW_DAYS, HOLIDAY_WINDOW_DAYS + 1):
            day = holiday + dt.timedelta(days=offset)
            label = name if offset == 0 else f"{'day before' if offset < 0 else 'day after'} {name}"
            near.setdefault(day, label)
    return near


def volume_evaluation(dataset, volume: Volume) -> Callable:
    """Rows per day against a day-of-week baseline from the neighbouring stored weeks."""

    def evaluate(conn, days: Days) -> Evaluation:
        first, last = days
        reach = dt.timedelta(weeks=BASELINE_WEEKS)
        counts = dict(conn.execute(
            f"SELECT day, count(*) FROM {dataset.raw.name} WHERE day BETWEEN ? AND ? GROUP BY day",
            [first - reach, last + reach],
        ).fetchall())
        near_holiday = holidays_near(first - reach, last + reach) if volume.holiday_calendar == "US" else {}

        def judge(day: dt.date) -> Verdict:
            rows = counts.get(day, 0)
            comparable = sorted(
                (other for other, n in counts.items()
                 if n > 0 and other != day and other.weekday() == day.weekday() and other not in near_holiday
                 and abs((other - day).days) <= reach.days),
                key=lambda other: (abs((other - day).days), other),
            )[:BASELINE_DAYS]
            weekday = day.strftime("%A")
            if volume.min_rows is not None and rows < volume.min_rows:
                return Verdict(day.isoformat(), False, f"{rows} rows, fewer than the contract's minimum of "
                               f"{volume.min_rows} a day", {"rows": rows})
            if len(comparable) < MIN_BASELINE_DAYS:
                return Verdict(day.isoformat(), True,
                               f"{rows} rows; no baseline yet (fewer than {MIN_BASELINE_DAYS} other {weekday}s stored "
                               f"within {BASELINE_WEEKS} weeks)", {"rows": rows})
            values = sorted(counts[other] for other in comparable)
            middle = len(values) // 2
            baseline = values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2
            holiday = near_holiday.get(day)
            low, high = volume.holiday_bounds if holiday else volume.bounds
            ratio = rows / baseline
            detail = (f"{rows} rows = {ratio:.0%} of the {weekday} baseline {baseline:g} "
                      f"(median of {', '.join(str(d) for d in sorted(comparable))}); allowed {low:.0%}..{high:.0%}"
                      + (f", relaxed: {holiday}" if holiday else ""))
            return Verdict(day.isoformat(), low <= ratio <= high, detail,
                           {"rows": rows, "baseline": baseline, "ratio": round(ratio, 3)})

        return Evaluation(per_partition(days, judge))

    return evaluate


def checks(dataset, volume: Volume) -> list[Check]:
    holidays = (f" Days within one day of a US federal holiday (pandas USFederalHolidayCalendar) are held to "
                f"{volume.holiday_bounds[0]:.0%}..{volume.holiday_bounds[1]:.0%} and never used as a baseline."
                if volume.holiday_calendar else "")
    return [Check(
        "volume_within_day_of_week_baseline",
        f"Asserts that each day has {volume.bounds[0]:.0%}..{volume.bounds[1]:.0%} of the rows of its "
        f"day-of-week baseline: the median of up to {BASELINE_DAYS} nearest same-weekday days (within "
        f"{BASELINE_WEEKS} weeks, stored, not near a holiday); weekends differ from weekdays, so a fixed number "
        f"would not do.{holidays}"
        + (f" Fewer than {volume.min_rows} rows fails even without history." if volume.min_rows is not None else "")
        + " Too little history otherwise passes with 'no baseline yet'. WARN: a light day can be real "
        "(a storm); a person decides.",
        WARN, volume_evaluation(dataset, volume), layer="raw",
    )]


register(CheckKind("volume", checks, property="volume", schema=SCHEMA, read=read))

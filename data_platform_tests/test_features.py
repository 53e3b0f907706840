"""Point-in-time correctness of features/flight_features, proven by perturbing real data."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from data_platform import features as F
from data_platform import storage
from data_platform.assets.features import _lineage
from data_platform.datasets import dataset
from data_platform.runner import materialize_days
from data_platform_tests.edit_tables import edit
from data_platform_tests.ml_fixtures import seeded_home, seeded_warehouse  # noqa: F401  (fixtures)

FEATURES = ["features/flight_features"]
D1, D2 = dt.date(2013, 1, 9), dt.date(2013, 1, 10)
# Weather observed after this instant is perturbed: the cut-offs of D2's flights fall on both sides.
WEATHER_CUT = pd.Timestamp("2013-01-10 17:00", tz="UTC")


def _features(warehouse) -> pd.DataFrame:
    with warehouse() as conn:
        frame = conn.execute("SELECT * FROM features.flight_features ORDER BY day, carrier, flight, origin").df()
    return frame.set_index(["day", "carrier", "flight", "origin"])


def _perturb() -> None:
    """Change everything a D1/D2 feature must not depend on, keeping which flights completed."""
    edit(
        dataset("flights").cleaned,
        # Every day after D2: outcomes and schedules change, some flights vanish.
        ("""
         UPDATE edited SET arr_delay = arr_delay + 300, dep_delay = dep_delay + 300,
                distance = distance + 1, sched_arr_time = 100
         WHERE day > ?
         """, [D2]),
        ("DELETE FROM edited WHERE day > ? AND flight % 2 = 0", [D2]),
        # D2 itself: the flights' own outcomes (departure, arrival, air time) change; the label may.
        ("""
         UPDATE edited SET dep_delay = dep_delay + 120, arr_delay = -arr_delay,
                dep_time = (dep_time % 2400) + 1, arr_time = (arr_time % 2400) + 1, air_time = air_time + 30
         WHERE day = ? AND NOT cancelled
         """, [D2]),
    )
    edit(
        dataset("weather").cleaned,
        # Every day after D2, and weather observed after WEATHER_CUT (the rest of D2 and the days after).
        ("UPDATE edited SET temp = -40, visib = 0, precip = 5 WHERE day > ?", [D2]),
        ("UPDATE edited SET temp = temp + 50, visib = 0.1, wind_speed = 80, pressure = 900, humid = 5 "
         "WHERE observed_at > ?", [WEATHER_CUT]),
    )


def test_features_ignore_the_future_and_the_flights_own_outcome(seeded_home, instance, resources, warehouse):
    materialize_days(FEATURES, D1, D2, instance=instance, resources=resources)
    before = _features(warehouse)
    assert set(before.index.get_level_values("day").date) == {D1, D2}

    _perturb()
    materialize_days(FEATURES, D1, D2, instance=instance, resources=resources)
    after = _features(warehouse)

    assert before.index.equals(after.index), "the set of completed flights must not change"
    on_d1 = before.index.get_level_values("day").date == D1
    # D1: nothing of D2 or later may matter, not even for its label.
    pd.testing.assert_frame_equal(before[on_d1], after[on_d1])

    d2_before, d2_after = before[~on_d1], after[~on_d1]
    known = d2_before["cutoff_utc"] <= WEATHER_CUT
    assert known.sum() > 100 and (~known).sum() > 100, "the weather cut must split D2's flights"
    feature_columns = [c for c in d2_before.columns if c != F.LABEL]
    # Flights whose cut-off is before the perturbed weather: every feature identical.
    pd.testing.assert_frame_equal(d2_before.loc[known, feature_columns], d2_after.loc[known, feature_columns])
    # Their label follows their own arrival (arr_delay was negated), so it changed for many.
    assert (d2_before.loc[known, F.LABEL] != d2_after.loc[known, F.LABEL]).mean() > 0.1
    # Later cut-offs see the perturbed weather: the perturbation reaches the features at all.
    sees_perturbed = d2_after["weather_observed_at"] > WEATHER_CUT
    assert sees_perturbed.sum() > 100
    assert (d2_before.loc[sees_perturbed, "wx_temp"] != d2_after.loc[sees_perturbed, "wx_temp"]).all()


def test_weather_is_observed_at_or_before_the_cutoff_and_never_in_the_flights_hour(seeded_home, instance, resources, warehouse):
    materialize_days(FEATURES, "2013-01-08", "2013-01-14", instance=instance, resources=resources)
    frame = _features(warehouse).reset_index()
    observed = frame["weather_observed_at"].dropna()
    assert len(observed) > 0.95 * len(frame)
    cutoff = frame.loc[observed.index, "cutoff_utc"]
    assert (observed <= cutoff).all()
    own_hour = frame.loc[observed.index, "sched_dep_utc"].dt.floor("h")
    assert (observed < own_hour).all()
    assert (frame["sched_dep_utc"] - frame["cutoff_utc"] == pd.Timedelta(hours=F.CUTOFF_HOURS)).all()


def test_outcomes_are_never_features_and_the_lists_match_the_contract():
    columns = set(F.CONTRACT.columns)
    assert not set(F.FORBIDDEN) & set(F.FEATURES)
    assert not {"dep_delay", "arr_delay", "dep_time", "arr_time", "air_time"} & columns
    assert set(F.FEATURES) <= columns and F.LABEL in columns and set(F.FLIGHT_KEY) <= columns
    assert len(F.FEATURES) == len(set(F.FEATURES))
    assert F.FEATURES == F.CATEGORICAL_FEATURES + F.SCHEDULE_FEATURES + F.PLANE_FEATURES + F.WEATHER_FEATURES + F.TRAILING_FEATURES


def test_trailing_rates_use_earlier_days_and_exclusions_are_counted(seeded_home, instance, resources, warehouse):
    result = materialize_days(FEATURES, "2013-01-01", "2013-01-09", instance=instance, resources=resources)
    with warehouse() as conn:
        expected = conn.execute(
            """
            SELECT avg((arr_delay > 15)::INTEGER) FROM cleaned.flights
            WHERE day BETWEEN '2013-01-02' AND '2013-01-08' AND carrier = 'UA' AND origin = 'EWR'
              AND NOT cancelled AND NOT diverted
            """).fetchone()[0]
        got = conn.execute(
            "SELECT DISTINCT carrier_origin_delay_rate_7d FROM features.flight_features "
            "WHERE day = '2013-01-09' AND carrier = 'UA' AND origin = 'EWR'").fetchall()
        first_day = conn.execute(
            "SELECT count(*), count(origin_delay_rate_7d) FROM features.flight_features WHERE day = '2013-01-01'"
        ).fetchone()
        excluded = conn.execute(
            "SELECT count(*) FILTER (WHERE cancelled), count(*) FILTER (WHERE diverted) FROM cleaned.flights "
            "WHERE day = '2013-01-05'").fetchone()
        missing_tail = conn.execute(
            "SELECT count(*), count(plane_seats) FROM features.flight_features WHERE tailnum IS NULL").fetchone()
    assert got == [(pytest.approx(expected),)]
    assert first_day[0] > 0 and first_day[1] == 0, "the first day has no history, so no rates"
    assert missing_tail[1] == 0
    metadata = {
        event.event_specific_data.materialization.partition: event.event_specific_data.materialization.metadata
        for event in result.get_asset_materialization_events()
    }
    assert metadata["2013-01-05"]["cancelled_excluded"].value == excluded[0]
    assert metadata["2013-01-05"]["diverted_excluded"].value == excluded[1]
    assert excluded[0] > 0


def test_features_refuse_days_without_cleaned_flights(seeded_home, instance, resources, warehouse):
    result = materialize_days(FEATURES, "2013-01-20", "2013-01-23", instance=instance, resources=resources,
                              raise_on_error=False)
    assert not result.success
    with warehouse() as conn:
        assert conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'flight_features'"
        ).fetchone()[0] == 0


def _check_results(result, asset: str) -> dict:
    return {
        e.event_specific_data.check_name: e.event_specific_data for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION" and e.event_specific_data.asset_key.to_user_string() == asset
    }


def test_features_contract_check_passes_on_real_data_and_blocks_a_leak(seeded_home, instance, resources):
    from dagster import AssetSelection

    from data_platform.assets.features import FEATURES_KEY

    result = materialize_days(FEATURES, "2013-01-08", "2013-01-10", instance=instance, resources=resources)
    checks = _check_results(result, "features/flight_features")
    assert checks["matches_features_contract"].passed and checks["flight_key_unique"].passed
    # A row whose weather was observed after its cut-off: the contract check fails, per partition.
    edit(F.CONTRACT, "UPDATE edited SET weather_observed_at = sched_dep_utc "
                     "WHERE day = '2013-01-09' AND carrier = 'UA' AND origin = 'EWR'")
    rerun = materialize_days(AssetSelection.checks_for_assets(FEATURES_KEY), "2013-01-08", "2013-01-10",
                             instance=instance, resources=resources, raise_on_error=False)
    failed = _check_results(rerun, "features/flight_features")["matches_features_contract"]
    assert not failed.passed and failed.severity.value == "ERROR"
    assert failed.metadata["failed_partition_keys"].value == "2013-01-09"


def _arrivals(conn, day: dt.date) -> pd.DataFrame:
    """Completed flights of `day` with their gate arrival in UTC, computed here in Python: the first
    `arr_time` on the destination's clock (its IANA zone from cleaned.airports, New York's when it has
    none) after the actual departure."""
    from zoneinfo import ZoneInfo

    frame = conn.execute(
        """
        SELECT f.carrier, f.flight, f.origin, f.dest, f.sched_dep_utc, f.dep_delay, f.arr_time, f.arr_delay, a.tzone
        FROM cleaned.flights f LEFT JOIN cleaned.airports a ON a.faa = f.dest
        WHERE f.day = ? AND NOT f.cancelled AND NOT f.diverted
        """, [day]).df()
    arrivals = []
    for row in frame.itertuples():
        zone = ZoneInfo(row.tzone or F.LOCAL_TIMEZONE)
        departed = (row.sched_dep_utc + pd.Timedelta(minutes=float(row.dep_delay))).to_pydatetime().astimezone(zone)
        wall = departed.replace(hour=0, minute=0, second=0, tzinfo=None) + dt.timedelta(
            minutes=int(row.arr_time) // 100 * 60 + int(row.arr_time) % 100)
        if wall < departed.replace(tzinfo=None):
            wall += dt.timedelta(days=1)
        arrivals.append(wall.replace(tzinfo=zone).astimezone(dt.timezone.utc))
    return frame.assign(arrived=arrivals)


def test_trailing_rates_count_only_outcomes_known_at_the_earliest_cutoff_of_the_day(
        seeded_home, instance, resources, warehouse):
    materialize_days(FEATURES, D1, D2, instance=instance, resources=resources)
    with warehouse() as conn:
        d1 = _arrivals(conn, D1)
        horizon = conn.execute("SELECT min(sched_dep_utc) FROM cleaned.flights WHERE day = ?", [D2]).fetchone()[0]
        horizon = horizon.astimezone(dt.timezone.utc) - dt.timedelta(hours=F.CUTOFF_HOURS)
        stored = dict(conn.execute(
            "SELECT origin, any_value(origin_delay_rate_1d) FROM features.flight_features WHERE day = ? GROUP BY origin",
            [D2]).fetchall())
    late = d1["arrived"] > horizon
    assert late.sum() >= 5, "some of D1's flights land after D2's earliest cut-off"
    known = d1[~late]
    expected = (known["arr_delay"] > F.DELAY_MINUTES).groupby(known["origin"]).mean().to_dict()
    leaky = (d1["arr_delay"] > F.DELAY_MINUTES).groupby(d1["origin"]).mean().to_dict()
    assert stored == pytest.approx(expected)
    assert any(abs(leaky[origin] - expected[origin]) > 1e-6 for origin in expected), "the rule changes a rate"

    # The perturbation: the outcomes of D1's late arrivals flip; D2's features must not move. The
    # same flip of flights that landed before the horizon moves them (the test can fail).
    def flip(rows):
        edit(dataset("flights").cleaned, *[
            ("UPDATE edited SET arr_delay = CASE WHEN arr_delay > 15 THEN 0 ELSE 90 END "
             "WHERE day = ? AND carrier = ? AND flight = ? AND origin = ?", [D1, row.carrier, row.flight, row.origin])
            for row in rows.itertuples()])

    on_d2 = lambda frame: frame[frame.index.get_level_values("day").date == D2]  # noqa: E731
    before = on_d2(_features(warehouse))
    flip(d1[late])
    materialize_days(FEATURES, D2, D2, instance=instance, resources=resources)
    pd.testing.assert_frame_equal(before, on_d2(_features(warehouse)))
    flip(d1[~late].head(20))
    materialize_days(FEATURES, D2, D2, instance=instance, resources=resources)
    assert (before["origin_delay_rate_1d"] != on_d2(_features(warehouse))["origin_delay_rate_1d"]).any()


def _deps(lineage, column):
    return {(dep.asset_key.to_user_string(), dep.column_name) for dep in lineage.deps_by_column[column]}


def test_column_lineage_is_derived_from_the_feature_declarations():
    lineage = _lineage()
    assert set(lineage.deps_by_column) == set(F.CONTRACT.columns)
    assert _deps(lineage, "plane_seats") == {("cleaned/flights", "tailnum"), ("cleaned/planes", "tailnum"),
                                             ("cleaned/planes", "seats")}
    assert _deps(lineage, "sched_dep_minute_of_day") == {("cleaned/flights", "hour"), ("cleaned/flights", "minute")}


def test_a_new_declaration_reaches_the_sql_the_service_the_catalog_and_the_lineage(seeded_home):
    """Two declarations added, nothing else edited: one reads inputs other features read, one a planes
    column no feature read so far. Both are computed by the offline SQL on real rows (checked against
    the cleaned tables) and by the online function, and appear in the catalog schema and the lineage."""
    from data_platform.contracts import at_least, column, column_schema
    from data_platform.feature_expressions import Col, Ratio, compile_python

    declarations = [
        *F.DECLARATIONS,
        F.Feature("wx_temp_per_seat", Ratio(Col("w_temp"), Col("p_seats")),
                  column("DOUBLE", "Origin temperature per seat.", rules=[at_least(0)]), "weather"),
        F.Feature("plane_manufacturer", Col("p_manufacturer"), column("VARCHAR", "Manufacturer of the plane."),
                  "plane", categorical=True),
    ]
    day = dt.date(2013, 1, 15)
    with storage.connection() as conn:
        frame = conn.execute(F.feature_query(declarations),
                             {"first": day, "last": day, "holidays": F.federal_holidays(day, day)}).df()
        planes = conn.execute("SELECT tailnum, manufacturer FROM cleaned.planes").df()
    both = frame.dropna(subset=["wx_temp", "plane_seats"])
    assert len(both) > 500
    assert ((both["wx_temp_per_seat"] - both["wx_temp"] / both["plane_seats"]).abs() < 1e-12).all()
    expected = frame[["tailnum"]].merge(planes, on="tailnum", how="left")["manufacturer"]
    assert frame["plane_manufacturer"].notna().sum() > 500
    assert frame["plane_manufacturer"].fillna("").tolist() == expected.fillna("").tolist()

    online = compile_python(F.definitions(declarations))
    row = {name: None for name in F.input_columns(declarations)} | {
        "w_temp": 40.0, "p_seats": 200, "p_manufacturer": "EMBRAER", F.HOLIDAYS_PARAM: []}
    assert {k: online(row)[k] for k in ("wx_temp_per_seat", "plane_manufacturer")} == {
        "wx_temp_per_seat": 0.2, "plane_manufacturer": "EMBRAER"}

    schema = {c.name: c for c in column_schema(F.table_contract(declarations)).columns}
    assert (schema["wx_temp_per_seat"].type, schema["wx_temp_per_seat"].constraints.other) == ("DOUBLE", ["at least 0"])
    assert schema["plane_manufacturer"].description == "Manufacturer of the plane."

    lineage = _lineage(declarations)
    assert _deps(lineage, "wx_temp_per_seat") == _deps(lineage, "wx_temp") | _deps(lineage, "plane_seats")
    assert _deps(lineage, "plane_manufacturer") == {("cleaned/flights", "tailnum"), ("cleaned/planes", "tailnum"),
                                                    ("cleaned/planes", "manufacturer")}

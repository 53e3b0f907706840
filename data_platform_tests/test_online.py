"""Online scoring against the real service, store and registry: parity with the offline features and the
batch predictions, point-in-time correctness of what is served, Redis behind the same interface, input
validation, champion moves without restart, and the serving-skew check in the graph."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import time
from pathlib import Path
from typing import Iterator

import duckdb
import pytest
from dagster import AssetSelection

from data_platform import features as F
from data_platform import storage
from data_platform.datasets import dataset
from data_platform.online import assemble as A
from data_platform.online import store as S
from data_platform.online.assets import COMPARED, COMPLETE_CHECK, ONLINE_KEY, SKEW_CHECK, OnlineStoreResource, same
from data_platform.storage.delta import TABLES_DIR
from data_platform_tests.edit_tables import edit
from data_platform_tests.ml_fixtures import seeded_warehouse  # noqa: F401  (fixture)
from data_platform_tests.serving_fixtures import (
    DAYS, SCORED, build_serving_home, mismatches, offline_rows, platform_env, redis_server, request_of, run, start_service,
)

D1, D2 = "2013-01-09", "2013-01-10"
WEATHER_CUT = dt.datetime(2013, 1, 10, 17, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def serving_home(tmp_path_factory, seeded_warehouse) -> Path:
    return build_serving_home(tmp_path_factory.mktemp("serving"), seeded_warehouse)


@pytest.fixture(scope="module")
def service(serving_home):
    running = start_service(serving_home)
    yield running
    running.stop()


@contextlib.contextmanager
def tables_moved_away(home: Path) -> Iterator[tuple[Path, Path]]:
    """The home's tables folder renamed for the duration, so nothing can open a table by name; yields
    (its name, its temporary name). Restored afterwards."""
    tables = home / TABLES_DIR
    assert (tables / "ml" / "delay_predictions" / "_delta_log").is_dir()
    moved = tables.with_name(tables.name + ".moved-away")
    os.replace(tables, moved)
    try:
        yield tables, moved
        assert not tables.exists(), "something created the tables folder again"
    finally:
        os.replace(moved, tables)


def opened_files(pid: int) -> set[str]:
    return {os.path.realpath(path) for path in Path(f"/proc/{pid}/fd").iterdir() if path.exists()}


@pytest.mark.real_process
def test_served_features_and_probabilities_equal_offline_and_batch(serving_home):
    rows = offline_rows(serving_home, *SCORED, every=4)
    assert len(rows) >= 1000
    singles, batched = rows[:200], rows[200:]
    answers = []
    # The service reads the online store and the registry, never the tables: it starts and
    # answers while the tables' files are not there under any name it could know.
    with tables_moved_away(serving_home) as folders:
        service = start_service(serving_home)
        try:
            for row in singles:
                status, answer = service.call("POST", "/predict", request_of(row))
                assert status == 200, answer
                answers.append(answer)
            for start in range(0, len(batched), 100):
                status, body = service.call("POST", "/predict/batch", {"flights": [request_of(r) for r in batched[start:start + 100]]})
                assert status == 200, body
                answers.extend(body["predictions"])
            opened = opened_files(service.process.pid)
        finally:
            service.stop()
    assert str(serving_home / "online" / "features.sqlite") in opened
    assert not [path for path in opened if path.startswith(tuple(os.path.realpath(f) + os.sep for f in folders))]
    assert len(answers) == len(rows)
    wrong = {f"{r['day']} {r['carrier']}{r['flight']} {r['origin']}": m for r, a in zip(rows, answers) if (m := mismatches(a, r))}
    assert not wrong, f"{len(wrong)} of {len(rows)} flights differ: {dict(list(wrong.items())[:5])}"
    # Served features are what the model was trained on: as of the cut-off, and nothing stale.
    assert all(a["cutoff"] == a["features"]["cutoff_utc"] and not a["stale"] for a in answers)
    assert sum(a["features"]["weather_observed_at"] is not None for a in answers) > 0.9 * len(answers)


@pytest.mark.real_process
def test_point_in_time_perturbing_everything_after_the_cutoff_changes_nothing_served(serving_home, tmp_path):
    # A copy of the home (tables, registry, online store) that this test may perturb.
    home = tmp_path / "data"
    shutil.copytree(serving_home, home, ignore=shutil.ignore_patterns("serve-*.log", "predictions"))
    rows = offline_rows(home, D2, D2)
    service = start_service(home)
    try:
        before = service.call("POST", "/predict/batch", {"flights": [request_of(r) for r in rows[:1000]]})[1]["predictions"]
        # A flight two days later reads D2 + 1 in its trailing rates (and caches them in the service).
        later_flight = request_of(offline_rows(home, "2013-01-12", "2013-01-12")[0])
        later_before = service.call("POST", "/predict", later_flight)[1]
        with platform_env(home):
            # Days after D2: outcomes, schedules and weather change; D2's own outcomes change; weather
            # observed after WEATHER_CUT changes.
            edit(dataset("flights").cleaned,
                 ("UPDATE edited SET arr_delay = arr_delay + 300, dep_delay = dep_delay + 300, "
                  "distance = distance + 1, sched_arr_time = 100 WHERE day > ?", [D2]),
                 ("UPDATE edited SET dep_delay = dep_delay + 120, arr_delay = -arr_delay, "
                  "air_time = air_time + 30 WHERE day = ? AND NOT cancelled", [D2]))
            edit(dataset("weather").cleaned,
                 ("UPDATE edited SET temp = temp + 50, visib = 0.1, wind_speed = 80, humid = 5 "
                  "WHERE observed_at > ?", [WEATHER_CUT]))
            assert run(["features/flight_features", "ml/online_features"], *DAYS).success
        after = service.call("POST", "/predict/batch", {"flights": [request_of(r) for r in rows[:1000]]})[1]["predictions"]
        later_after = service.call("POST", "/predict", later_flight)[1]
    finally:
        service.stop()
    known = [i for i, r in enumerate(rows[:1000]) if r["cutoff_utc"] <= WEATHER_CUT]
    later = [i for i, r in enumerate(rows[:1000]) if r["cutoff_utc"] > WEATHER_CUT + dt.timedelta(hours=1)]
    assert len(known) > 100 and len(later) > 100
    for i in known:
        assert before[i]["features"] == after[i]["features"], rows[i]
        assert before[i]["probability"] == after[i]["probability"]
    # The perturbation reaches what is served for later cut-offs: the test can fail; and a rewritten
    # store is read at once (the service's lookup cache follows the store's generation).
    assert later_after["features"]["carrier_delay_rate_7d"] > later_before["features"]["carrier_delay_rate_7d"]
    assert all(after[i]["features"]["wx_temp"] != before[i]["features"]["wx_temp"] for i in later
               if before[i]["features"]["wx_temp"] is not None)


@pytest.mark.real_process
def test_redis_store_holds_the_same_rows_and_passes_the_completeness_check(serving_home):
    rows = offline_rows(serving_home, *SCORED, every=10)
    requests = [A.FlightRequest(r["carrier"], r["flight"], r["origin"], r["dest"], r["sched_dep_utc"], r["tailnum"])
                for r in rows]
    with redis_server() as url, platform_env(serving_home, DATA_PLATFORM_ONLINE_STORE=url):
        from data_platform.resources import build_resources

        resources = {**build_resources(), "online_store": OnlineStoreResource(url=url)}
        result = run(["ml/online_features"], "2013-01-10", DAYS[1], resources=resources)
        assert result.success
        [complete] = [e.event_specific_data for e in result.all_events
                      if e.event_type_value == "ASSET_CHECK_EVALUATION" and e.event_specific_data.check_name == COMPLETE_CHECK]
        assert complete.passed, complete.description
        redis_store = S.open_store(url)
        sqlite_store = S.open_store(f"sqlite:///{serving_home / 'online' / 'features.sqlite'}", readonly=True)
        holidays = A.Holidays()
        for size in (1, 50):  # one-by-one lookups and grouped ones
            from_redis = [a for i in range(0, len(requests), size) for a in A.assemble(redis_store, requests[i:i + size], holidays)]
            from_sqlite = [a for i in range(0, len(requests), size) for a in A.assemble(sqlite_store, requests[i:i + size], holidays)]
            assert [a.features for a in from_redis] == [a.features for a in from_sqlite]
        wrong = [r for r, a in zip(rows, from_redis) if any(not same(a.features[n], r[n]) for n in COMPARED)]
        assert not wrong and len(rows) > 400
        # The day's rows are replaced, not accumulated: a re-run leaves the same counts.
        count = redis_store.count("trailing_flight", dt.date(2013, 1, 20))
        assert run(["ml/online_features"], "2013-01-20", "2013-01-20", resources=resources).success
        assert redis_store.count("trailing_flight", dt.date(2013, 1, 20)) == count > 0
        redis_store.close()


@pytest.mark.real_process
def test_bad_input_is_refused_field_by_field_and_nothing_reaches_sql(service):
    good = {"carrier": "B6", "flight": 725, "origin": "JFK", "dest": "BQN",
            "scheduled_departure": "2013-01-17T05:44:00-05:00", "tailnum": "N804JB"}
    status, body = service.call("POST", "/predict", {k: v for k, v in good.items() if k != "origin"} | {
        "flight": "725", "scheduled_departure": "2013-01-17T05:44:00", "carrier": "b6x"})
    assert status == 422
    fields = {error["field"]: error["message"] for error in body["errors"]}
    assert set(fields) == {"origin", "flight", "scheduled_departure", "carrier"}, body
    assert "offset" in fields["scheduled_departure"]
    status, body = service.call("POST", "/predict", good | {"tailnum": "N1'; DROP TABLE schedule;--"})
    assert status == 422 and [e["field"] for e in body["errors"]] == ["tailnum"]
    status, body = service.call("POST", "/predict", good | {"extra": 1})
    assert status == 422 and body["errors"][0]["field"] == "extra"
    status, body = service.call("POST", "/predict/batch", {"flights": [good] * 1001})
    assert status == 422 and body["errors"][0]["field"] == "flights"
    status, body = service.call("POST", "/predict/batch", raw=b'{"flights": [' + b" " * 1_100_000 + b"]}")
    assert status == 413
    status, body = service.call("POST", "/predict", raw=b"{not json")
    assert status == 422
    # Unknown categories are scored as in training (missing) and flagged.
    status, body = service.call("POST", "/predict", good | {"dest": "ZZZ", "carrier": "Q9"})
    assert status == 200 and sorted(body["unknown_categories"]) == ["carrier=Q9", "dest=ZZZ"], body
    assert 0 < body["probability"] < 1 and any("unknown category" in flag for flag in body["flags"])
    # The store is intact after the attempt above.
    assert service.call("POST", "/predict", good)[0] == 200


@pytest.mark.real_process
def test_a_flight_after_the_newest_data_is_scored_on_the_newest_data_and_says_how_stale(service):
    status, body = service.call("POST", "/predict", {"carrier": "B6", "flight": 725, "origin": "JFK", "dest": "BQN",
                                                     "scheduled_departure": "2013-01-25T05:44:00-05:00"})
    assert status == 200, body
    assert body["stale"] and body["stale_seconds"] == pytest.approx((3 * 24 + 3 + 44 / 60) * 3600, abs=60)
    assert body["features"]["origin_departures_in_hour"] is None
    assert body["features"]["carrier_delay_rate_7d"] is not None  # as of 2013-01-22, the newest aggregates
    status, health = service.call("GET", "/health")
    assert status == 200 and health["store_newest_day"] == DAYS[1] and health["model_version"] == "1"
    assert health["store_as_of"] == "2013-01-22T05:00:00+00:00" and health["store_staleness_seconds"] > 0


@pytest.mark.real_process
def test_a_departure_beyond_the_horizon_is_a_422_naming_the_field_never_a_503(service):
    flight = {"carrier": "B6", "flight": 725, "origin": "JFK", "dest": "BQN"}
    as_of = dt.datetime(2013, 1, 22, 5, tzinfo=dt.timezone.utc)  # the store's newest data
    horizon = dt.timedelta(days=A.HORIZON_DAYS)
    for departure in ("0001-01-01T00:00:00+00:00", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:00+00:00",
                      (as_of + horizon + dt.timedelta(minutes=1)).isoformat()):
        status, body = service.call("POST", "/predict", flight | {"scheduled_departure": departure})
        assert status == 422 and body["errors"][0]["field"] == "scheduled_departure", (departure, body)
        assert f"{A.HORIZON_DAYS} days" in body["errors"][0]["message"]
    status, body = service.call("POST", "/predict", flight | {"scheduled_departure": (as_of + horizon).isoformat()})
    assert status == 200 and body["stale"], body  # at the horizon: scored, and said to be stale
    good = flight | {"scheduled_departure": "2013-01-21T05:44:00-05:00"}
    status, body = service.call("POST", "/predict/batch", {"flights": [good, flight | {"scheduled_departure": "2099-01-01T00:00:00Z"}]})
    assert status == 422 and [e["field"] for e in body["errors"]] == ["flights.1.scheduled_departure"], body


@pytest.mark.real_process
def test_health_is_503_without_store_or_model(tmp_path):
    home = tmp_path / "empty"
    (home / "dagster").mkdir(parents=True)
    service = start_service(home, expect_healthy=False)
    try:
        status, body = service.call("GET", "/health")
        assert status == 503 and body["model_version"] is None and "store_error" in body
        assert service.call("POST", "/predict", {"carrier": "B6", "flight": 1, "origin": "JFK", "dest": "BQN",
                                                 "scheduled_departure": "2013-01-17T05:44:00-05:00"})[0] == 503
    finally:
        service.stop()


@pytest.mark.real_process
def test_an_unreachable_redis_store_gives_503_not_500(serving_home):
    from data_platform_tests.serving_fixtures import free_port

    service = start_service(serving_home, expect_healthy=False,
                            DATA_PLATFORM_ONLINE_STORE=f"redis://127.0.0.1:{free_port()}/0")
    try:
        status, body = service.call("GET", "/health")
        assert status == 503 and body["model_version"] == "1" and "store_error" in body, body
        status, body = service.call("POST", "/predict", {"carrier": "B6", "flight": 1, "origin": "JFK", "dest": "BQN",
                                                         "scheduled_departure": "2013-01-17T05:44:00-05:00"})
        assert status == 503 and "online store unavailable" in body["error"], body
    finally:
        service.stop()


@pytest.mark.real_process
def test_a_moved_champion_is_served_within_a_minute_and_one_request_never_mixes_versions(serving_home, service):
    from data_platform.mlflow_store import MlflowStore

    flights = [request_of(r) for r in offline_rows(serving_home, *SCORED, every=50)]
    with platform_env(serving_home):
        config = {"train_first": "2013-01-08", "train_last": "2013-01-14", "holdout_first": "2013-01-16",
                  "holdout_last": "2013-01-21", "max_iter": 30, "min_samples_leaf": 60, "learning_rate": 0.2}
        run(AssetSelection.assets(["ml", "delay_model"]), run_config={"ops": {"ml__delay_model": {"config": config}}})
        store = MlflowStore.from_env()
        store.set_alias("2")
        try:
            versions_seen, deadline = set(), time.monotonic() + 60
            while time.monotonic() < deadline:
                status, body = service.call("POST", "/predict/batch", {"flights": flights})
                assert status == 200
                versions = {p["model_version"] for p in body["predictions"]}
                assert len(versions) == 1, "one request, one model version"
                versions_seen |= versions
                if versions == {"2"}:
                    break
                time.sleep(0.2)
            assert versions_seen >= {"2"}, "the new champion was not served within a minute"
            import mlflow.sklearn
            from data_platform import modeling
            import pandas as pd

            pipeline = mlflow.sklearn.load_model("models:/flight_delay/2")
            rows = pd.DataFrame(offline_rows(serving_home, *SCORED, every=50))
            expected = modeling.predict(pipeline, rows)
            assert max(abs(p["probability"] - e) for p, e in zip(body["predictions"], expected)) <= 1e-9
        finally:
            store.set_alias("1")
            deadline = time.monotonic() + 60
            while service.call("GET", "/health")[1]["model_version"] != "1" and time.monotonic() < deadline:
                time.sleep(0.2)


@pytest.mark.real_process
def test_skew_check_in_the_graph_passes_on_logged_predictions_and_names_mismatching_features(serving_home, service):
    flights = [request_of(r) for r in offline_rows(serving_home, "2013-01-18", "2013-01-18", every=20)]
    assert service.call("POST", "/predict/batch", {"flights": flights})[0] == 200
    log = serving_home / "online" / "predictions" / "2013-01-18.jsonl"
    deadline = time.monotonic() + 10
    while (not log.exists() or len(log.read_text().splitlines()) < len(flights)) and time.monotonic() < deadline:
        time.sleep(0.1)

    def skew(first, last):
        with platform_env(serving_home):
            result = run(AssetSelection.assets(ONLINE_KEY), first, last)
        [evaluation] = [e.event_specific_data for e in result.all_events
                        if e.event_type_value == "ASSET_CHECK_EVALUATION" and e.event_specific_data.check_name == SKEW_CHECK]
        return evaluation

    passed = skew("2013-01-18", "2013-01-18")
    assert passed.passed and passed.metadata["compared"].value >= len(flights), passed.description
    # A logged prediction whose features differ from the offline row (as a drifting second
    # implementation would produce) fails the check with ERROR and names the feature.
    record = json.loads(log.read_text().splitlines()[0])
    record["features"]["wx_temp"] = (record["features"]["wx_temp"] or 0) + 1.5
    record["features"]["origin_departures_in_hour"] += 1
    with log.open("a") as handle:
        handle.write(json.dumps(record) + "\n")
    failed = skew("2013-01-18", "2013-01-18")
    assert not failed.passed and failed.severity.value == "ERROR"
    assert failed.metadata["mismatching_features"].value == {"wx_temp": 1, "origin_departures_in_hour": 1}
    assert failed.metadata["mismatching_predictions"].value == 1


def test_feature_declarations_mean_the_same_in_sql_and_python():
    """Each declaration evaluated by DuckDB, by the expression tree and by the compiled function on
    edge cases (missing values, zero denominators, stale weather, a DST day, a holiday)."""
    from data_platform.feature_expressions import compile_python, evaluate_all

    utc = dt.timezone.utc
    base = {name: None for name in F.FEATURE_INPUTS}
    holidays = sorted(F.federal_holidays(dt.date(2013, 1, 1), dt.date(2013, 12, 31)))
    cases = [
        base | {"day": dt.date(2013, 3, 10), "sched_dep_utc": dt.datetime(2013, 3, 10, 7, 5, tzinfo=utc),
                "hour": 3, "minute": 5, "tco_n": 0, "tco_k": 0.0, "tor_s1": 4, "tor_c1": 1.0},
        base | {"day": dt.date(2013, 7, 4), "sched_dep_utc": dt.datetime(2013, 7, 4, 22, 59, tzinfo=utc), "hour": 18,
                "minute": 59, "sched_arr_time": 2359, "w_observed_at": dt.datetime(2013, 7, 4, 14, 59, tzinfo=utc),
                "w_temp": 80.0, "p_year": 2001, "tf_n": 3, "tf_k": 2.0},
        base | {"day": dt.date(2013, 11, 3), "sched_dep_utc": dt.datetime(2013, 11, 3, 6, 0, tzinfo=utc), "hour": 1,
                "minute": 0, "sched_arr_time": 105, "w_observed_at": dt.datetime(2013, 11, 3, 4, 0, tzinfo=utc),
                "w_temp": 41.0, "w_pressure": 1010.5},
    ]
    compiled = compile_python(F.FEATURE_DEFINITIONS)
    from data_platform.feature_expressions import select_list

    with duckdb.connect() as conn:
        for case in cases:
            columns = ", ".join(f"${name}::{type_of(name)} AS {name}" for name in F.FEATURE_INPUTS)
            cursor = conn.execute(f"SELECT {select_list(F.FEATURE_DEFINITIONS)} FROM (SELECT {columns})",
                                  {**{k: v for k, v in case.items() if k in F.FEATURE_INPUTS}, "holidays": holidays})
            sql = dict(zip([c[0] for c in cursor.description], cursor.fetchone()))
            python = evaluate_all(F.FEATURE_DEFINITIONS, case | {"holidays": holidays})
            assert compiled(case | {"holidays": holidays}) == python
            assert {k: v for k, v in python.items() if not same(v, sql[k])} == {}, case


def type_of(name: str) -> str:
    if name == "day":
        return "DATE"
    if name in ("sched_dep_utc", "w_observed_at"):
        return "TIMESTAMPTZ"
    if name in ("carrier", "origin", "dest", "tailnum", "p_engine"):
        return "VARCHAR"
    if name.endswith("_k") or name.startswith(("w_", "tor_k", "tor_c")) or name == "distance":
        return "DOUBLE"
    return "BIGINT"

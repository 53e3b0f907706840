"""End to end against the real processes of `make dev` (code server, webserver, daemon, MLflow UI,
report server under honcho) on free loopback ports: backfills launched through the GraphQL API the
way the UI launches them, sensors ticking, the first hour in a real browser, and a clean stop on
SIGTERM and on Ctrl-C. One module, so one pytest worker runs it on one `make dev` (the session
fixture `backfilled_stack`); the tests run in file order."""

import signal
import time
from pathlib import Path

import duckdb
import pytest

from data_platform import automation
from data_platform.checks import freshness
from data_platform_tests.browser import LAYERS, PLOTTED, browser, newcomer, screenshots  # noqa: F401  (fixtures)
from data_platform_tests.conftest import GRAPH_DAYS, MONTH
from data_platform_tests.devstack import DevStack, metadata

pytestmark = pytest.mark.real_process

FLIGHTS_ON_GRAPH_DAYS = 2_632  # in the bundled data
# Failing checks on clean data that are real findings about the bundled data (README): 2013-12-31
# has no weather at all.
REAL_FINDINGS = {("raw/weather", "volume_within_day_of_week_baseline")}  # 2013-12-31 has no weather
STOP_WITHIN_SECONDS = 10


def path(key: dict) -> str:
    return "/".join(key["path"])


def test_a_whole_graph_backfill_from_the_ui_on_nothing_materialized_is_green(backfilled_stack):
    stack, results = backfilled_stack
    graph, keys = results["graph"], [path(key) for key in results["keys"]]
    partitioned = {path(key) for key in results["partitioned"]}
    failed_runs = [run["id"] for run in graph["runs"] if run["status"] != "SUCCESS"]
    assert graph["status"] == "COMPLETED_SUCCESS" and not failed_runs, (graph, stack.tail())
    # single-run backfill policies: a handful of runs for the whole graph, not one per partition
    assert 1 <= len(graph["runs"]) < len(keys)

    # exactly the three days of every daily asset (nothing widened), every unpartitioned asset once
    for node in results["graph_nodes"]:
        key = path(node["assetKey"])
        if not node["isExecutable"]:
            continue
        events = node["byDay"] if key in partitioned else node["latest"]
        if key in partitioned:
            assert sorted({event["partition"] for event in events}) == GRAPH_DAYS, key
        else:
            assert len(events) == 1 and events[0]["runId"] in {run["id"] for run in graph["runs"]}, key
        if key.split("/")[0] in ("raw", "cleaned", "features"):
            empty = {event["partition"] for event in events
                     if not metadata(event["metadataEntries"]).get("dagster/row_count", 0)}
            # the bundled weather has no observation on 2013-12-31 (a real gap, reported by a check)
            assert empty == ({"2013-12-31"} if key.endswith("/weather") else set()), key

    # every check ran, and none failed except the documented real findings: the reference checks
    # ran after the reference tables (cleaned/flights depends on them), the drift checks judged
    checks = {(path(node["assetKey"]), check["name"]): check
              for node in results["graph_nodes"] for check in (node["assetChecksOrError"] or {}).get("checks", [])}
    evaluated = {key: check["executionForLatestMaterialization"]["evaluation"] for key, check in checks.items()
                 if check["executionForLatestMaterialization"] and check["executionForLatestMaterialization"]["evaluation"]}
    # the freshness checks are evaluated by their sensor, on its own schedule: not necessarily after
    # the latest materialization yet (when evaluated, they must pass like any other check)
    not_evaluated = sorted(key for key in set(checks) - set(evaluated) if key[1] != freshness.CHECK_NAME)
    assert not not_evaluated, not_evaluated
    failed = {key: evaluation["description"][:300] for key, evaluation in evaluated.items() if not evaluation["success"]}
    assert set(failed) == REAL_FINDINGS, failed
    for key in ("carrier_known_in_airlines", "dest_known_in_airports", "tailnum_known_in_planes"):
        description = evaluated[("cleaned/flights", key)]["description"]
        assert description.startswith("passed on all 3 partition(s)"), description
    for key in partitioned:
        assert (key, freshness.CHECK_NAME) in checks, key

    # the tables behind the daily assets hold exactly the three days
    with duckdb.connect(str(stack.data_home / "warehouse.duckdb"), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM raw.flights WHERE day BETWEEN '2013-12-29' AND '2013-12-31'"
                            ).fetchone()[0] == FLIGHTS_ON_GRAPH_DAYS
    print("end to end: " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in results["timings"].items()))


def test_sensors_tick_after_the_backfill_and_automation_redoes_nothing(backfilled_stack):
    _, results = backfilled_stack
    for name, state in results["sensors"].items():
        assert state["status"] == "RUNNING", name  # on without anyone turning them on
        assert not [tick for tick in state["ticks"] if tick["status"] == "FAILURE"], (name, state["ticks"])
    assert set(results["sensors"]) == {freshness.SENSOR_NAME, automation.AUTOMATION_SENSOR}
    assert not results["automated_after_graph"], results["automated_after_graph"]


def test_a_month_backfilled_from_the_ui_over_every_daily_asset_targets_that_month_and_completes(backfilled_stack):
    stack, results = backfilled_stack
    month = results["month"]
    failed_runs = [(run["id"], run["status"]) for run in month["runs"] if run["status"] != "SUCCESS"]
    assert month["status"] == "COMPLETED_SUCCESS" and not failed_runs, (month, stack.tail())
    # the UI sends partition names and an asset selection; Dagster maps them downstream along
    # partition mappings: features depend on their own day, so nothing past November is targeted
    statuses = {path(s["assetKey"]): s for s in month["assetBackfillData"]["assetBackfillStatuses"]}
    for key in (path(k) for k in results["partitioned"]):
        assert statuses[key]["numPartitionsTargeted"] == len(MONTH), (key, statuses[key])
        assert statuses[key]["numPartitionsMaterialized"] == len(MONTH), (key, statuses[key])
        assert stack.materialized_partitions(key) == set(MONTH) | set(GRAPH_DAYS), key


# --- the first hour in a real browser (Playwright on the distribution's Chromium), on the same
# `make dev` after its backfills, in the order a newcomer meets the pages; screenshots in SCREENSHOTS


def test_browser_1_the_asset_graph_shows_every_layer(newcomer):
    newcomer.open("/asset-groups")
    graph = newcomer.page.get_by_text("Materialize all")
    graph.wait_for()
    newcomer.page.mouse.click(900, 750)  # focus the graph, then expand all groups (Alt+E)
    newcomer.page.keyboard.press("Alt+e")
    newcomer.page.get_by_text("flight_features").first.wait_for()
    text = newcomer.page.inner_text("body")
    for layer in LAYERS:
        assert layer in text, layer
    for asset in ("airlines", "flights", "weather", "flight_features", "delay_model", "model_performance", "feature_drift"):
        assert asset in text, asset
    newcomer.shot("1-asset-graph")


def test_browser_2_cleaned_flights_shows_its_columns_with_their_rules(newcomer):
    newcomer.open("/assets/cleaned/flights")
    newcomer.page.get_by_text("sched_dep_utc").first.wait_for()
    text = newcomer.page.inner_text("body")
    assert "Columns" in text and "TIMESTAMPTZ" in text
    assert "one of EWR, JFK, LGA" in text  # a contract rule, in words
    assert "part of the unique key" in text
    newcomer.page.get_by_text("sched_dep_utc").first.scroll_into_view_if_needed()
    newcomer.shot("2-cleaned-flights-columns")


def test_browser_3_the_checks_of_the_features_show_their_results(newcomer):
    newcomer.open("/assets/features/flight_features?view=checks")
    newcomer.page.get_by_text("matches_features_contract").first.wait_for()
    text = newcomer.page.inner_text("body")
    for check in ("matches_features_contract", "flight_key_unique", "feature_drift"):
        assert check in text, check
    assert "Succeeded" in text
    newcomer.shot("3-feature-checks")


def test_browser_4_model_performance_plots_a_point_for_each_materialized_partition(newcomer):
    stack = newcomer.stack
    materialized = stack.materialized_partitions("ml/model_performance")
    assert len(materialized) >= 30
    newcomer.open("/assets/ml/model_performance")
    newcomer.page.get_by_role("button", name="Plots").click()
    newcomer.page.get_by_role("button", name="Partitions").click()
    newcomer.page.locator("canvas").first.wait_for()
    deadline = time.monotonic() + 30
    while True:
        charts = {chart["title"]: set(chart["partitions"]) for chart in newcomer.page.evaluate(PLOTTED)}
        if charts.get("roc_auc") == materialized or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert charts.get("roc_auc") == materialized, (sorted(materialized), charts.get("roc_auc"))
    assert charts.get("log_loss") == materialized
    newcomer.page.get_by_role("button", name="Partitions").scroll_into_view_if_needed()
    newcomer.shot("4-model-performance-plots")


def test_browser_5_a_drift_result_links_its_report_which_shows_the_per_column_table(newcomer):
    newcomer.open("/assets/features/flight_features?view=checks")
    newcomer.page.get_by_text("feature_drift").first.click()
    link = newcomer.page.locator(f"a[href^='{newcomer.stack.reports}/drift/feature_drift/']").first
    link.wait_for()
    newcomer.shot("5a-feature-drift-check")
    href = link.get_attribute("href")
    with newcomer.context.expect_page() as opened:
        link.click()
    report = opened.value
    report.wait_for_load_state("networkidle")
    report.get_by_text("Per-column drift").first.wait_for()
    assert report.url == href
    text = report.inner_text("body")
    for column in ("column", "method", "score", "threshold", "wx_temp", "carrier_delay_rate_7d"):
        assert column in text, column
    newcomer.shot("5b-drift-report", page=report)


def test_browser_6_the_model_links_its_mlflow_run(newcomer):
    newcomer.open("/assets/ml/delay_model")
    link = newcomer.page.locator(f"a[href^='{newcomer.stack.mlflow_ui}/#/experiments/']").first
    link.wait_for()
    newcomer.shot("6a-model-metadata")
    href = link.get_attribute("href")
    run_id = href.rsplit("/", 1)[-1]
    with newcomer.context.expect_page() as opened:
        link.click()
    run = opened.value
    run.get_by_text("holdout_roc_auc").first.wait_for(timeout=60_000)
    text = run.inner_text("body")
    assert run_id in text or "delay_model" in text
    version = newcomer.page.locator(f"a[href^='{newcomer.stack.mlflow_ui}/#/models/flight_delay/versions/']")
    assert version.count() >= 1
    newcomer.shot("6b-mlflow-run", page=run)


def test_make_dev_stops_everything_it_started_on_sigterm_within_10_s(backfilled_stack):
    stack, _ = backfilled_stack
    assert stack.processes(), "make dev is not running"
    seconds = stack.stop(signal.SIGTERM)
    assert not stack.processes(), "processes of make dev outlived it"
    assert seconds <= STOP_WITHIN_SECONDS, f"make dev took {seconds:.1f} s to stop on SIGTERM"


def test_make_dev_stops_everything_it_started_on_ctrl_c_within_10_s(tmp_path: Path):
    stack = DevStack(tmp_path).start()
    try:
        stack.wait_until_up()
        assert len(stack.processes()) >= 6  # make, honcho, code server, webserver, daemon, MLflow, reports
        assert {"Dagster UI", "MLflow UI", "drift reports"} <= {
            line.split("  ")[0] for line in stack.log.read_text().splitlines()}  # the URLs, printed once
        seconds = stack.stop(signal.SIGINT)
        assert not stack.processes(), "processes of make dev outlived it"
        assert seconds <= STOP_WITHIN_SECONDS, f"make dev took {seconds:.1f} s to stop on Ctrl-C"
    finally:
        stack.stop(signal.SIGKILL)

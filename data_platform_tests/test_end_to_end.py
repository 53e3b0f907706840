"""End to end against the real processes of `make dev` (code server, webserver, daemon, MLflow UI,
report server under honcho) on free loopback ports: backfills launched through the GraphQL API the
way the UI launches them, sensors ticking, the first hour in a real browser, and a clean stop on
SIGTERM and on Ctrl-C. One module, so one pytest worker runs it on one `make dev` (the session
fixture `backfilled_stack`); the tests run in file order."""

import signal
import time
from pathlib import Path

import pytest

from data_platform import automation, storage
from data_platform.checks import freshness
from data_platform_tests.browser import LAYERS, PLOTTED, browser, newcomer, screenshots  # noqa: F401  (fixtures)
from data_platform_tests.conftest import GRAPH_DAYS, MONTH
from data_platform_tests.devstack import ASSETS, DevStack, metadata
from data_platform_tests.serving_fixtures import platform_env

pytestmark = pytest.mark.real_process

FLIGHTS_ON_GRAPH_DAYS = 2_632  # in the bundled data
# Failing checks on clean data that are real findings about the bundled data (README): 2013-12-31
# has no weather at all.
REAL_FINDINGS = {("raw/weather", "volume_within_day_of_week_baseline")}  # 2013-12-31 has no weather
STOP_WITHIN_SECONDS = 10
# What the UI's list of checks says for each status of a check's latest execution.
STATUS_LABELS = {"SUCCEEDED": "Succeeded", "FAILED": "Failed", "EXECUTION_FAILED": "Execution failed",
                 "IN_PROGRESS": "In progress", "SKIPPED": "Skipped", "NOT_EVALUATED": "Not evaluated"}
# The text of each named check's entry: the largest element around its name holding no other check's name.
CHECK_ENTRIES = """(names) => names.map(name => {
  const labels = [...document.querySelectorAll('body *')]
    .filter(e => e.children.length === 0 && e.textContent.trim() === name);
  const boxes = labels.map(box => {
    while (box.parentElement && !names.some(other => other !== name && box.parentElement.innerText.includes(other)))
      box = box.parentElement;
    return box.innerText.trim();
  });
  boxes.sort((a, b) => a.length - b.length);
  return [name, boxes.length ? boxes[0] : null];
})"""


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
    with platform_env(stack.data_home), storage.connection() as conn:
        assert conn.execute("SELECT count(*) FROM raw.flights WHERE day BETWEEN '2013-12-29' AND '2013-12-31'"
                            ).fetchone()[0] == FLIGHTS_ON_GRAPH_DAYS
    print("end to end: " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in results["timings"].items()))


RUN_FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}
PARTITION_TAGS = ("dagster/partition", "dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


def test_sensors_tick_after_the_backfill_and_automation_redoes_nothing_but_follows_a_new_day(backfilled_stack):
    stack, results = backfilled_stack
    for name, state in results["sensors"].items():
        assert state["status"] == "RUNNING", name  # on without anyone turning them on
        assert not [tick for tick in state["ticks"] if tick["status"] == "FAILURE"], (name, state["ticks"])
    assert set(results["sensors"]) == {freshness.SENSOR_NAME, automation.AUTOMATION_SENSOR}
    assert not results["automated_after_graph"], results["automated_after_graph"]

    # The query that found nothing finds automation's runs once there is work: a day re-ingested
    # from the UI is followed downstream, that day only, until the sensor has nothing left to do.
    day = MONTH[14]
    stack.launch_backfill({"partitionNames": [day], "title": "re-ingest a day",
                           "assetSelection": [{"path": ["raw", "flights"]}, {"path": ["raw", "weather"]}]})

    def settled():
        runs = stack.automated_runs()
        if not runs or any(run["status"] not in RUN_FINISHED for run in runs):
            return None
        last_end = max(run["endTime"] for run in runs)
        ticks = stack.sensor_state(automation.AUTOMATION_SENSOR)["ticks"]
        return runs if any(t["status"] == "SKIPPED" and t["timestamp"] > last_end for t in ticks) else None

    runs = stack.wait_until("automation to follow the re-ingested day", settled, 600, every=5)
    assert all(run["status"] == "SUCCESS" for run in runs), (runs, stack.tail())
    for run in runs:
        assert {tag["value"] for tag in run["tags"] if tag["key"] in PARTITION_TAGS} == {day}, run
    followed = {"/".join(key["path"]) for run in runs for key in run["assetSelection"]}
    assert {"cleaned/flights", "cleaned/weather", "features/flight_features"} <= followed, followed
    assert not {"raw/flights", "raw/weather", automation.MODEL_KEY.to_user_string()} & followed, followed


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
    newcomer.page.get_by_text("flight_features", exact=True).first.wait_for()
    # every layer is a group (the tree of groups beside the graph), every asset a node of its own
    for name in (*LAYERS, "airlines", "flights", "weather", "flight_features", "delay_model", "model_performance",
                 "feature_drift"):
        element = newcomer.page.get_by_text(name, exact=True).first
        assert element.count() and element.is_visible(), name
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
    # each check's entry in the list shows its own latest result: the contract and key checks pass on
    # these features; feature_drift shows what the instance recorded for it
    [node] = [node for node in newcomer.stack.graphql(ASSETS % "[]")["assetNodes"]
              if path(node["assetKey"]) == "features/flight_features"]
    recorded = {check["name"]: (check["executionForLatestMaterialization"] or {}).get("status", "NOT_EVALUATED")
                for check in node["assetChecksOrError"]["checks"]}
    expected = {"matches_features_contract": "Succeeded", "flight_key_unique": "Succeeded",
                "feature_drift": STATUS_LABELS[recorded["feature_drift"]]}
    newcomer.open("/assets/features/flight_features?view=checks")
    newcomer.page.get_by_text("matches_features_contract", exact=True).first.wait_for()
    entries = dict(newcomer.page.evaluate(CHECK_ENTRIES, sorted(recorded)))
    for check, label in expected.items():
        lines = [line for line in (entries.get(check) or "").split("\n") if line]
        assert lines[-1:] == [label] and set(lines[:-1]) == {check}, (check, entries.get(check))  # name, status
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
    # the link opens the MLflow run the model's materialization recorded, and that page is the run's
    [node] = [node for node in newcomer.stack.graphql(ASSETS % "[]")["assetNodes"]
              if path(node["assetKey"]) == "ml/delay_model"]
    run_id = metadata(node["latest"][0]["metadataEntries"])["mlflow_run_id"]
    href = link.get_attribute("href")
    assert href.startswith(f"{newcomer.stack.mlflow_ui}/#/experiments/") and href.endswith(f"/runs/{run_id}"), href
    with newcomer.context.expect_page() as opened:
        link.click()
    run = opened.value
    run.get_by_text("holdout_roc_auc").first.wait_for(timeout=60_000)
    assert run.url == href
    shown = run.get_by_text(run_id, exact=True).first
    assert shown.count() and shown.is_visible(), f"run {run_id} is not shown on {run.url}"
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

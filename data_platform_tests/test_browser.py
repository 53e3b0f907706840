"""The first hour in a real browser: Playwright drives the distribution's Chromium (nothing is
downloaded) through the UI of `make dev` after the end-to-end backfills, in the order a newcomer
meets the pages. Screenshots of each page go to SCREENSHOTS (or $DATA_PLATFORM_SCREENSHOTS)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from data_platform.settings import PROJECT_ROOT

# one `make dev` for both modules: the same xdist worker runs them (make test: --dist loadgroup)
pytestmark = [pytest.mark.real_process, pytest.mark.xdist_group("make_dev")]

SCREENSHOTS = Path(os.environ.get("DATA_PLATFORM_SCREENSHOTS") or PROJECT_ROOT / ".data" / "screenshots")
CHROMIUM = os.environ.get("DATA_PLATFORM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
LAYERS = ["raw", "cleaned", "features", "ml", "monitoring"]

# The per-partition plots are chart.js canvases: read each chart's data from its React props, and
# name it by the heading above it. Returns [{title, partitions (with a plotted value)}].
PLOTTED = """() => [...document.querySelectorAll('canvas')].map(canvas => {
  const key = Object.keys(canvas).find(k => k.startsWith('__reactFiber$'));
  let fiber = key ? canvas[key] : null;
  for (let depth = 0; fiber && depth < 30; depth++, fiber = fiber.return) {
    const props = fiber.memoizedProps || {};
    if (props.data && props.data.datasets) {
      const labels = props.data.labels || [], values = props.data.datasets[0].data || [];
      let box = canvas.parentElement;
      while (box && !(box.innerText || '').trim()) box = box.parentElement;
      return {title: (box ? box.innerText : '').trim().split(String.fromCharCode(10))[0],
              partitions: values.map((v, i) => [labels[i], v && typeof v === 'object' ? v.y : v])
                                .filter(([label, y]) => Number.isFinite(y)).map(([label]) => label)};
    }
  }
  return {title: null, partitions: []};
})"""


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM}: apt-get install chromium (.ci/run does)"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def screenshots():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


class Newcomer:
    """A browser page on the stack's UI that dismisses the first-visit dialog and takes screenshots."""

    def __init__(self, browser, stack, folder: Path):
        self.context = browser.new_context(viewport={"width": 1440, "height": 900})
        self.page = self.context.new_page()
        self.page.set_default_timeout(60_000)
        self.stack, self.folder = stack, folder

    def open(self, path: str) -> None:
        self.page.goto(self.stack.ui + path)
        self.page.wait_for_load_state("networkidle")
        self.dismiss()

    def dismiss(self) -> None:
        skip = self.page.get_by_role("button", name="Skip")
        if skip.count():
            skip.first.click()

    def shot(self, name: str, page=None, full_page: bool = False) -> Path:
        path = self.folder / f"{name}.png"
        (page or self.page).screenshot(path=str(path), full_page=full_page)
        return path


@pytest.fixture
def newcomer(browser, backfilled_stack, screenshots):
    stack, _ = backfilled_stack
    person = Newcomer(browser, stack, screenshots)
    yield person
    person.context.close()


def test_1_the_asset_graph_shows_every_layer(newcomer):
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


def test_2_cleaned_flights_shows_its_columns_with_their_rules(newcomer):
    newcomer.open("/assets/cleaned/flights")
    newcomer.page.get_by_text("sched_dep_utc").first.wait_for()
    text = newcomer.page.inner_text("body")
    assert "Columns" in text and "TIMESTAMPTZ" in text
    assert "one of EWR, JFK, LGA" in text  # a contract rule, in words
    assert "part of the unique key" in text
    newcomer.page.get_by_text("sched_dep_utc").first.scroll_into_view_if_needed()
    newcomer.shot("2-cleaned-flights-columns")


def test_3_the_checks_of_the_features_show_their_results(newcomer):
    newcomer.open("/assets/features/flight_features?view=checks")
    newcomer.page.get_by_text("matches_features_contract").first.wait_for()
    text = newcomer.page.inner_text("body")
    for check in ("matches_features_contract", "flight_key_unique", "feature_drift"):
        assert check in text, check
    assert "Succeeded" in text
    newcomer.shot("3-feature-checks")


def test_4_model_performance_plots_a_point_for_each_materialized_partition(newcomer):
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


def test_5_a_drift_result_links_its_report_which_shows_the_per_column_table(newcomer):
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


def test_6_the_model_links_its_mlflow_run(newcomer):
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

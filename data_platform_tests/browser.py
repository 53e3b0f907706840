"""A newcomer in a real browser: Playwright drives the distribution's Chromium (nothing is
downloaded). The browser tests are in test_end_to_end.py, on its `make dev` after the backfills;
screenshots of each page go to SCREENSHOTS (or $DATA_PLATFORM_SCREENSHOTS)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from data_platform.settings import PROJECT_ROOT


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
        self.dismissed = False

    def open(self, path: str) -> None:
        self.page.goto(self.stack.ui + path)
        self.page.wait_for_load_state("networkidle")
        self.dismiss()

    def dismiss(self) -> None:
        """Close the community dialog. It can open after the page went network-idle, so on the
        first page wait a moment for it; later calls (before every screenshot) only look."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        skip = self.page.get_by_role("button", name="Skip")
        if not self.dismissed:
            try:
                skip.first.wait_for(timeout=5_000)
            except PlaywrightTimeout:
                pass
        if skip.count():
            skip.first.click()
            skip.first.wait_for(state="detached")
            self.dismissed = True

    def shot(self, name: str, page=None, full_page: bool = False) -> Path:
        if page is None:
            self.dismiss()
        path = self.folder / f"{name}.png"
        (page or self.page).screenshot(path=str(path), full_page=full_page)
        return path


@pytest.fixture
def newcomer(browser, backfilled_stack, screenshots):
    stack, _ = backfilled_stack
    person = Newcomer(browser, stack, screenshots)
    yield person
    person.context.close()

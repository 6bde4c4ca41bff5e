"""The console in a real headless Chromium (Debian's `chromium`), driven by Playwright.

Where Chromium or Playwright is missing, these tests skip with one line saying so;
everything else in the suite runs as usual. `.ci/run` installs Chromium.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.tools import missing

CHROMIUM = os.environ.get("GATEWAY_TEST_CHROMIUM") or shutil.which("chromium") or ""
# Set to a directory to keep a screenshot of each main view (docs/console/ holds the
# README's): `CONSOLE_SCREENSHOTS=docs/console make test PYTEST_ARGS=tests/console`.
SCREENSHOTS = os.environ.get("CONSOLE_SCREENSHOTS")
# The flags this machine's Chromium needs to start quietly with no network.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

try:
    from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright
except ImportError:  # pragma: no cover - the dev extras install it
    sync_playwright = None  # type: ignore[assignment]


# Module-scoped, not session-scoped: Playwright's sync API keeps an event loop running on
# this thread while it is open, which the async tests that follow cannot share.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if sync_playwright is None:
        missing("console tests: Playwright is not installed (pip install -e '.[dev]')")
    if not CHROMIUM:
        missing("console tests: no Chromium found (apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield browser
        browser.close()


class Console:
    """A page plus every console error and uncaught exception it produced."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def shot(self, name: str) -> None:
        if SCREENSHOTS:
            Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)


@pytest.fixture
def console(browser: Browser) -> Iterator[Console]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield Console(page)
    context.close()


def labelled(page: Page) -> list[dict[str, Any]]:
    """Every visible form control without an accessible label."""
    result: list[dict[str, Any]] = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea')]
            .filter(el => el.offsetParent !== null)
            .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
            .map(el => ({tag: el.tagName, id: el.id}))"""
    )
    return result

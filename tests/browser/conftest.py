"""Browser tests: Playwright drives Debian's Chromium (Playwright cannot download browsers here)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import chromium
from tests.chromium import CHROMIUM

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# Playwright hides the caret with an injected <style>, which the panel's CSP rightly blocks
# (a console error that would fail the test): keep the caret.
SCREENSHOT = {"full_page": True, "caret": "initial"}
# Playwright's sync API runs an event loop in this thread; the ORM calls in these tests are
# still plain synchronous code (PITFALLS.md).
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "browser" in item.nodeid.split("::")[0]:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def playwright() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def browser(playwright: object) -> Iterator[object]:
    browser = playwright.chromium.launch(  # type: ignore[attr-defined]
        executable_path=CHROMIUM, headless=True, args=chromium.ARGS
    )
    yield browser
    browser.close()


@pytest.fixture
def page(browser: object, request: pytest.FixtureRequest) -> Iterator[object]:
    """A fresh browser page. Ask for it last, after the servers: fixtures are torn down in
    reverse, so the page closes before the servers stop (a stream cut by a stopping server
    is a console error)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})  # type: ignore[attr-defined]
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # CSP violations and failed resources surface as console errors.
    page.on(
        "console",
        lambda message: errors.append(message.text) if message.type == "error" else None,
    )
    yield page
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), **SCREENSHOT)
    context.close()
    assert not errors, f"errors in the browser console: {errors}"


def screenshot(page: object, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), **SCREENSHOT)  # type: ignore[attr-defined]
    return path

"""The demo in a real browser: Debian's headless Chromium, driven by Playwright.

The demo runs as ``asgi-sessions demo`` in its own process on a SQLite file, as a
user would start it; the browser logs in, reloads, outlives a server restart, signs
in from a second profile, signs that device out from "Your devices", logs out and
presses Back. A failure leaves screenshots in ``tests/artifacts/``; a pass leaves
``tests/artifacts/demo.png``.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import httpx
import pytest
from demo_server import demo_process, free_port, wait_until_serving
from playwright.async_api import Browser, Page, async_playwright, expect
from playwright.async_api import Error as PlaywrightError

pytestmark = pytest.mark.anyio

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""The machine has no outside network: nothing may try to phone home."""

KEEP_BACK_FORWARD_CACHE = ["--disable-back-forward-cache"]
"""Playwright turns Chromium's back/forward cache off; a user's browser has it on."""

FOOTER = "asgi_sessions demo: no passwords"
"""The last line of every demo page: once shown, the whole page is there."""


@pytest.fixture
def chromium() -> Path:
    """Debian's Chromium; skipped where it is missing, unless CI is set."""
    if not CHROMIUM.exists():
        message = f"no Chromium at {CHROMIUM}: apt-get install chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    """Chromium, headless, driven by Playwright; closed after the test."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(chromium),
            headless=True,
            args=CHROMIUM_ARGS,
            ignore_default_args=KEEP_BACK_FORWARD_CACHE,
        )
        try:
            yield launched
        finally:
            await launched.close()


async def new_page(browser: Browser, base_url: str) -> Page:
    """A page in a fresh context: its own cookies and cache, like another device."""
    context = await browser.new_context(base_url=base_url)
    context.set_default_timeout(15_000)
    return await context.new_page()


@asynccontextmanager
async def screenshots_on_failure(pages: dict[str, Page]) -> AsyncIterator[None]:
    """Save a screenshot of every page in ``pages`` if the block fails."""
    try:
        yield
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        for name, page in pages.items():
            with suppress(PlaywrightError):  # a dead browser must not hide the failure
                await page.screenshot(path=ARTIFACTS / f"browser-failure-{name}.png")
        raise


async def log_in(page: Page, name: str) -> None:
    await page.goto("/")
    await page.get_by_label("Your name").fill(name)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_load_state()


async def press_back(page: Page) -> str:
    """Press Back and return the page shown, whether it came from a cache or the server.

    A page restored from the back/forward cache fires no load event, so this waits
    for the footer rather than for the load.
    """
    await page.go_back(wait_until="commit")
    await page.get_by_text(FOOTER).wait_for()
    return await page.content()


async def visits(page: Page) -> int:
    """The counter on the home page of a logged-in user."""
    found = re.search(r"viewed this page <strong>(\d+)</strong>", await page.content())
    assert found, "no visit counter on the page"
    return int(found.group(1))


async def test_demo_in_a_browser_logs_in_survives_a_restart_revokes_and_logs_out(
    browser: Browser, tmp_path: Path
) -> None:
    db, port = tmp_path / "demo.db", free_port()
    base_url = f"http://127.0.0.1:{port}"
    laptop = await new_page(browser, base_url)
    phone = await new_page(browser, base_url)
    pages = {"laptop": laptop, "phone": phone}

    async with httpx.AsyncClient(base_url=base_url) as probe, screenshots_on_failure(pages):
        with demo_process(db, port) as first:
            await wait_until_serving(probe, first)
            await log_in(laptop, "alice")
            assert "Hello alice" in await laptop.content()
            assert "Welcome, alice!" in await laptop.content()
            assert await visits(laptop) == 1
            await laptop.reload()
            await laptop.reload()
            assert await visits(laptop) == 3
            first.kill()  # not even a clean shutdown
            first.wait()

        with demo_process(db, port) as second:
            await wait_until_serving(probe, second)
            await laptop.reload()
            assert "Hello alice" in await laptop.content()
            assert await visits(laptop) == 4
            logged_in = await laptop.screenshot(full_page=True)

            await log_in(phone, "alice")
            assert "Hello alice" in await phone.content()
            for page in (phone, laptop):
                await page.get_by_role("link", name="Your devices").click()
                await page.wait_for_load_state()
                await expect(page.locator("tr")).to_have_count(3)  # a header and two devices
                await expect(page.get_by_text("this device")).to_have_count(1)
                await expect(page.get_by_text("HeadlessChrome").first).to_be_visible()
                await expect(page.get_by_text("127.0.0.1").first).to_be_visible()

            await laptop.get_by_role("button", name="Revoke").click()
            await laptop.wait_for_load_state()
            assert "Device signed out." in await laptop.content()
            await expect(laptop.locator("tr")).to_have_count(2)

            await phone.reload()
            assert "Hello alice" not in await phone.content()
            await expect(phone.get_by_role("button", name="Log in")).to_have_count(1)

            await laptop.get_by_role("link", name="Back").click()  # home, then log out
            await laptop.get_by_role("button", name="Log out").click()
            await laptop.wait_for_load_state()
            assert "You are logged out." in await laptop.content()
            # Back to the home page (same URL as now: only the back/forward cache could
            # show the old one), then to the devices page (the HTTP cache could too).
            for private_page in ("home", "devices"):
                shown = await press_back(laptop)
                assert "alice" not in shown, f"Back showed the {private_page} page after logout"
                assert "viewed this page" not in shown
                await expect(laptop.get_by_role("button", name="Log in")).to_have_count(1)

    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "demo.png").write_bytes(logged_in)

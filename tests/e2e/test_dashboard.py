"""The live dashboard in headless Chromium (Debian's /usr/bin/chromium, driven by playwright):
it loads with nothing from elsewhere, shows an application filed by the test within 5 s and
turns it processed, with no JS error; the API still stops at once with the page open."""

from __future__ import annotations

import logging
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, sync_playwright

from tools.stack.processes import api_and_worker

CHROMIUM = Path("/usr/bin/chromium")
# As the machine's closed network wants it: no background connections, no sandbox as root.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

logger = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), "Debian's chromium is needed (apt-get install chromium)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_dashboard_shows_a_new_application_turn_processed(
    service_env: dict[str, str], browser: Browser
) -> None:
    with api_and_worker(service_env) as (api, _worker):
        page = browser.new_page()
        problems: list[str] = []
        elsewhere: list[str] = []
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on(
            "console",
            lambda message: problems.append(message.text) if message.type == "error" else None,
        )
        page.on(
            "request",
            lambda request: (
                None if request.url.startswith(api.url) else elsewhere.append(request.url)
            ),
        )
        page.goto(f"{api.url}/dashboard")
        page.wait_for_selector("#connection[data-state=live]", timeout=10_000)

        user = f"dash-{uuid.uuid4().hex[:8]}"
        description = "<b>not markup</b>"
        posted = time.monotonic()
        response = httpx.post(
            f"{api.url}/applications", json={"user_name": user, "description": description}
        )
        assert response.status_code == 201, response.text
        row = f'tr[data-id="{response.json()["id"]}"]'

        page.wait_for_selector(row, timeout=5_000)
        shown = time.monotonic() - posted
        page.wait_for_selector(f'{row} .status[data-status="processed"]', timeout=5_000)
        processed = time.monotonic() - posted
        logger.info("dashboard: shown %.3f s, processed %.3f s after the POST", shown, processed)

        cells = page.locator(f"{row} td").all_inner_texts()
        assert cells[1:4] == [user, description, "processed"]  # text, never markup
        page.wait_for_selector(f'tr[data-user="{user}"]', timeout=5_000)
        assert page.locator(f'tr[data-user="{user}"] .processed').inner_text() == "1"
        assert bars_total(page) >= 1
        assert page.locator("#lag-total").inner_text().isdigit()
        assert problems == []
        assert elsewhere == []

        # An open event stream does not hold the API's stop for its shutdown timeout.
        stopping = time.monotonic()
        assert api.process is not None
        api.process.send_signal(signal.SIGTERM)
        api.process.wait(timeout=15)
        assert time.monotonic() - stopping < 10
        page.wait_for_selector("#connection[data-state=lost]", timeout=10_000)
        page.close()


def bars_total(page: Any) -> int:
    return sum(
        int(value)
        for value in page.eval_on_selector_all(
            "#minutes div", "bars => bars.map(bar => bar.dataset.processed)"
        )
    )

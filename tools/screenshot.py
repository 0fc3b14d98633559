"""A screenshot of Prometheus graphing real streamapp traffic, for the README:

    .venv/bin/python -m tools.screenshot docs/prometheus-graph.png

Starts PostgreSQL and Apache Kafka (as the benchmarks do), an API and a worker, and Debian's
Prometheus scraping both with the project's recording rules; posts applications at two
rates with a pause between, then opens Prometheus' graph of the filed and processed rates
(the dashboard's first panel, from `deploy/prometheus/rules.yml`) in headless Chromium.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
import urllib.parse
from pathlib import Path

from playwright.sync_api import sync_playwright

from bench.stack import running, stack, start_api, start_worker, wait_assigned, wrk
from tools.stack.prometheus import Prometheus

logger = logging.getLogger("screenshot")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]
EXPRESSIONS = ("streamapp:applications_created:rate1m", "streamapp:records_processed:rate1m")
# (connections, seconds) of POST load, with PAUSE seconds of none after each.
LOAD = ((4, 40), (16, 40))
PAUSE = 20


def capture(output: Path) -> None:
    with stack() as servers:
        url = asyncio.run(servers.database("screenshot"))
        worker = start_worker(servers.env(url))
        with running(worker):
            wait_assigned([worker])
            api = start_api(servers.env(url))
            prometheus = Prometheus(f"127.0.0.1:{api.port}", [f"127.0.0.1:{worker.web_port}"])
            with running(api):
                prometheus.start()
                try:
                    for connections, seconds in LOAD:
                        load = wrk(
                            f"{api.url}/applications",
                            seconds=seconds,
                            script="post.lua",
                            connections=connections,
                        )
                        logger.info(
                            "%d connections: %.0f POST/s", connections, load.requests_per_second
                        )
                        time.sleep(PAUSE)
                    _photograph(prometheus.url, output)
                finally:
                    prometheus.remove()


def _photograph(prometheus_url: str, output: Path) -> None:
    """Prometheus' graph page with a panel per expression, as Chromium renders it."""
    query: dict[str, str] = {}
    for i, expression in enumerate(EXPRESSIONS):
        query |= {f"g{i}.expr": expression, f"g{i}.tab": "0", f"g{i}.range_input": "4m"}
    page_url = f"{prometheus_url}/graph?{urllib.parse.urlencode(query)}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        page.goto(page_url)
        page.wait_for_selector(".graph_area svg", timeout=30_000)  # the classic UI (Debian)
        page.wait_for_timeout(1_000)  # the charts' last drawing
        page.screenshot(path=str(output), full_page=True)
        browser.close()
    logger.info("wrote %s", output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    capture(arguments.output)


if __name__ == "__main__":
    main()

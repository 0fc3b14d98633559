"""Flat growth: the same operations on 100,000, 1,000,000 and 10,000,000 applications, and a
worker draining a backlog of 100,000 and of 1,000,000 records.

Each size has a database of its own and an API on it, so the sizes are measured round by
round in turn, like a baseline and its figure, and the noise of the machine hits them alike.
The deep pages are the same depth at every size (DEPTH rows below the newest): a page by
number costs what its offset costs, so a depth growing with the table would measure the
offset, not the table. A deep page by number's statement is also timed against plain
`OFFSET ... LIMIT` queries on the one table: for its rows (the target), and for ids alone (the
first half of the page's own work, reported), on a connection that plans as the API's do; and
its endpoint against a minimal one for the ids (`/ids` of bench/baselines.py).
"""

from __future__ import annotations

import logging
import time

import asyncpg

from bench.baselines import IDS_SQL, ROWS_SQL
from bench.scaling import Drain, timed_drain
from bench.scenarios import Figure, Sizes, _publish_backlog, _reset
from bench.stack import BaselineServer, Stack, fetch_value, running, start_api, vacuum, wrk
from streamapp.db import GENERIC_PLANS
from streamapp.services.applications import PAGE_OF_ALL_SQL
from streamapp.services.generator import Plan, generate
from streamapp.services.paging import NEWEST
from streamapp.web.api.pagination import encode_cursor

logger = logging.getLogger(__name__)

DEPTH = 50_000
USER = "user-007"
PAGE_SIZE = 10
PLAIN_OFFSET = "plain OFFSET on one table"
STATEMENT_SECONDS = 3.0


OPERATIONS = (
    "list page 1",
    "list one user's page 1",
    "list a deep page by cursor",
    "list a deep page by number",
    "POST /applications",
)


def _target(operation: str, newest: int, depth: int) -> tuple[str, str | None]:
    """The URL path of one operation, and its wrk script."""
    if operation.startswith("POST"):
        return "/applications", "post.lua"
    query = {
        "list page 1": "",
        "list one user's page 1": f"&user_name={USER}",
        "list a deep page by cursor": f"&cursor={encode_cursor(newest - depth)}",
        "list a deep page by number": f"&page={depth // PAGE_SIZE}",
    }[operation]
    return f"/applications?size={PAGE_SIZE}{query}", None


async def growth(stack: Stack, sizes: Sizes) -> list[Figure]:
    """Each operation's rate on the largest table against the smallest; the drain of the
    larger backlog against the smaller one; the worker's memory on the larger."""
    urls = {size: await _populated(stack, size, sizes.users) for size in sizes.growth_sizes}
    largest = sizes.growth_sizes[-1]
    depth = min(DEPTH, sizes.growth_sizes[0] // 2)
    # Before any POST: the page's total counts the applications still new (none yet).
    statements = await _statements_per_second(urls[largest], depth, sizes.growth_rounds)
    rates = await _operations(stack, urls, sizes)
    plain = rates.pop(PLAIN_OFFSET)
    figures = [_size_figure(name, per_size, sizes.growth_sizes) for name, per_size in rates.items()]
    figures += [
        Figure(
            f"a deep page by number's statement at {largest:,} rows, against a plain OFFSET",
            "statements/s",
            statements["page"],
            statements["rows"],
            1.0,
            baseline_name="SELECT the rows ... OFFSET LIMIT on the one table, same connection",
        ),
        Figure(
            f"a deep page by number's statement at {largest:,} rows, against OFFSET for ids only",
            "statements/s",
            statements["page"],
            statements["ids"],
            None,
            baseline_name="SELECT id ... OFFSET LIMIT on the one table, same connection",
        ),
        Figure(
            f"list a deep page by number at {largest:,} rows, against a plain OFFSET endpoint",
            "requests/s",
            rates["list a deep page by number"][largest],
            plain[largest],
            None,
            baseline_name="a minimal endpoint running SELECT id ... OFFSET LIMIT",
            notes={"label": PLAIN_OFFSET, "per_size": {str(s): r for s, r in plain.items()}},
        ),
    ]
    figures += await _drains(stack, sizes)
    return figures


async def _populated(stack: Stack, size: int, users: int) -> str:
    url = await stack.database(f"growth_{size}")
    await generate(url, Plan(count=size, users=users, prefix="user"))
    await vacuum(url)
    return url


async def _newest(url: str) -> int:
    return int(await fetch_value(url, "SELECT max(id) FROM applications"))


async def _operations(
    stack: Stack, urls: dict[int, str], sizes: Sizes
) -> dict[str, dict[int, list[float]]]:
    """Requests/s of every operation at every size, the sizes in turn (in a rotating order)
    within each round. The listings go first: the POSTs leave applications new (no worker
    runs here), which the listings' totals would count."""
    rates: dict[str, dict[int, list[float]]] = {
        op: {size: [] for size in urls} for op in OPERATIONS
    }
    rates[PLAIN_OFFSET] = {size: [] for size in urls}
    depth = min(DEPTH, min(urls) // 2)  # the smoke run's tables are smaller than DEPTH
    newest = {size: await _newest(url) for size, url in urls.items()}
    apis = {size: start_api(stack.env(url)) for size, url in urls.items()}
    offsets = {size: BaselineServer("keyset", stack.env(url)).start() for size, url in urls.items()}
    plain = f"/ids?size={PAGE_SIZE}&offset={depth - PAGE_SIZE}"
    with running(*apis.values(), *offsets.values()):
        for operation in (*OPERATIONS, PLAIN_OFFSET):
            servers = offsets if operation == PLAIN_OFFSET else apis
            for index in range(sizes.growth_rounds):
                for size in _rotated(list(urls), index):
                    path, script = (
                        (plain, None)
                        if operation == PLAIN_OFFSET
                        else _target(operation, newest[size], depth)
                    )
                    load = wrk(f"{servers[size].url}{path}", seconds=sizes.seconds, script=script)
                    rates[operation][size].append(load.requests_per_second)
    return rates


def _rotated(items: list[int], by: int) -> list[int]:
    by %= len(items)
    return items[by:] + items[:by]


async def _statements_per_second(url: str, depth: int, rounds: int) -> dict[str, list[float]]:
    """The deep page by number's statement against the plain offset queries, run in turn on
    one connection that plans as the API's do: what the page costs the database, without
    either server's overhead."""
    statements = {
        "page": (PAGE_OF_ALL_SQL, (NEWEST, PAGE_SIZE, depth - PAGE_SIZE)),
        "rows": (ROWS_SQL, (depth - PAGE_SIZE, PAGE_SIZE)),
        "ids": (IDS_SQL, (depth - PAGE_SIZE, PAGE_SIZE)),
    }
    rates: dict[str, list[float]] = {name: [] for name in statements}
    connection = await asyncpg.connect(url, server_settings=GENERIC_PLANS)
    try:
        for _ in range(rounds):
            for name, (sql, arguments) in statements.items():
                count, started = 0, time.perf_counter()
                while time.perf_counter() - started < STATEMENT_SECONDS:
                    await connection.fetch(sql, *arguments)
                    count += 1
                rates[name].append(count / (time.perf_counter() - started))
    finally:
        await connection.close()
    return rates


def _size_figure(name: str, per_size: dict[int, list[float]], sizes: tuple[int, ...]) -> Figure:
    smallest, largest = sizes[0], sizes[-1]
    return Figure(
        f"{name} at {largest:,} rows",
        "requests/s",
        per_size[largest],
        per_size[smallest],
        0.85,
        baseline_name=f"the same at {smallest:,} rows",
        notes={"label": name, "per_size": {str(s): rates for s, rates in per_size.items()}},
    )


async def _drains(stack: Stack, sizes: Sizes) -> list[Figure]:
    """One worker draining each backlog, the two in turn within each round."""
    urls = {}
    for backlog in sizes.growth_backlogs:
        url = await stack.database(f"growth_drain_{backlog}")
        await generate(url, Plan(count=backlog, users=sizes.users, processed=False, prefix="d"))
        urls[backlog] = url
    drains: dict[int, list[Drain]] = {backlog: [] for backlog in urls}
    for index in range(sizes.rounds):
        for backlog in _rotated(list(urls), index):
            url = urls[backlog]
            await _reset(url)
            with stack.fresh_kafka():
                published = await _publish_backlog(stack.kafka.bootstrap_servers, url)
                drain = await timed_drain(stack, url, published, backlog, 1)
            logger.info(
                "backlog %d: %.0f records/s, peak RSS %.0f MiB, longest gap %.2f s",
                *(backlog, drain.rate, drain.peak_rss_mib, drain.longest_gap_s),
            )
            drains[backlog].append(drain)
    small, large = sizes.growth_backlogs[0], sizes.growth_backlogs[-1]
    rate = Figure(
        f"1 worker draining a backlog of {large:,}",
        "records/s",
        [d.rate for d in drains[large]],
        [d.rate for d in drains[small]],
        0.85,
        baseline_name=f"the same worker draining {small:,}",
        notes={
            "label": "1 worker's drain (the table is the backlog)",
            "per_size": {str(b): [d.rate for d in runs] for b, runs in drains.items()},
            "longest_gaps_s": [d.longest_gap_s for d in drains[large]],
        },
    )
    memory = Figure(
        f"1 worker's peak RSS draining a backlog of {large:,}",
        "MiB",
        [d.peak_rss_mib for d in drains[large]],
        [300.0] * len(drains[large]),
        1.0,
        higher_is_better=False,
        baseline_name="the 300 MiB bound",
    )
    return [rate, memory]

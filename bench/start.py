"""A worker's start, from `streamapp worker` to its first processed record, against a running
broker: the broker and the group's topics are there (one worker ran before), and records wait
on the topic, as when a worker is restarted or added. The very first start on an empty broker
(which also creates the topics) is the drains suite's figure.
"""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg

from bench.scenarios import Figure, Sizes, _publish_backlog
from bench.stack import Stack, fetch_value, running, start_worker
from streamapp.services.generator import Plan, generate

logger = logging.getLogger(__name__)

WAITING = 2_000  # records on the topic at each start
TARGET_SECONDS = 1.5


async def start(stack: Stack, sizes: Sizes) -> list[Figure]:
    url = await stack.database("start")
    with stack.fresh_kafka():
        await _first_processed_after_start(stack, url)  # creates the topics and the group
        firsts = [await _first_processed_after_start(stack, url) for _ in range(sizes.start_rounds)]
    logger.info("worker start to first processed record: %s s", firsts)
    return [
        Figure(
            "worker start to first processed record, running broker",
            "s",
            firsts,
            [TARGET_SECONDS] * len(firsts),
            1.0,
            higher_is_better=False,
            baseline_name=f"the {TARGET_SECONDS} s target",
        )
    ]


async def _first_processed_after_start(stack: Stack, url: str) -> float:
    """Put WAITING new records on the topic, start a worker, and return the seconds from its
    launch to the first of them processed (the batch's time in PostgreSQL); stop it once all
    are processed."""
    after = await _newest_outbox_id(url)
    await generate(url, Plan(count=WAITING, users=20, processed=False, prefix="start"))
    await _publish_backlog(stack.kafka.bootstrap_servers, url, after_outbox_id=after)
    launched = time.time()
    with running(start_worker(stack.env(url, LOG_LEVEL="INFO"), wait=False)):
        first = await _first_processed(url, after)
    return round(first - launched, 3)


async def _newest_outbox_id(url: str) -> int:
    return int(await fetch_value(url, "SELECT coalesce(max(id), 0) FROM outbox"))


async def _first_processed(url: str, after_outbox_id: int, timeout: float = 60) -> float:
    """Wait until the applications queued after that outbox row are all processed; return
    when the first of them was (epoch seconds)."""
    connection = await asyncpg.connect(url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            left, first = await connection.fetchrow(
                "SELECT count(*) FILTER (WHERE a.status = 'new'), "
                "extract(epoch FROM min(a.processed_at)) "
                "FROM outbox AS o JOIN applications AS a ON a.id = o.application_id "
                "WHERE o.id > $1",
                after_outbox_id,
            )
            if left == 0 and first is not None:
                return float(first)
            await asyncio.sleep(0.05)
    finally:
        await connection.close()
    raise RuntimeError(f"the {WAITING} records were not processed in {timeout:.0f}s")

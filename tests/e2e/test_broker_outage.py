"""The broker stops while applications arrive: every POST is still 201 and nothing is lost."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest

from tests.harness.effects import post_applications, user_count, wait_processed
from tools.stack.kafka import ApacheKafka
from tools.stack.processes import eventually


async def unpublished(pg: asyncpg.Pool, user_name: str) -> int:
    return int(
        await pg.fetchval(
            "SELECT count(*) FROM outbox WHERE key = $1 AND published_at IS NULL", user_name
        )
    )


async def test_applications_filed_while_the_broker_is_down_are_processed_once_it_is_back(
    client: httpx.AsyncClient,
    pg: asyncpg.Pool,
    kafka: ApacheKafka | None,
    start_worker,
    user_name: str,
) -> None:
    if kafka is None:
        pytest.skip("TEST_KAFKA_BOOTSTRAP_SERVERS names an external cluster this test cannot stop")
    worker = await asyncio.to_thread(start_worker)
    before = await post_applications(client, [user_name], 20)
    await wait_processed(pg, before)

    kafka.stop()
    try:
        during = await post_applications(client, [user_name], 30)  # asserts every one is 201
        assert await unpublished(pg, user_name) > 0
        statuses = await pg.fetch(
            "SELECT DISTINCT status FROM applications WHERE id = ANY($1)", during
        )
        assert [row["status"] for row in statuses] == ["new"]
    finally:
        kafka.start()

    ids = before + during
    await wait_processed(pg, ids, timeout=180)
    assert await unpublished(pg, user_name) == 0
    # Records published twice (fast path and relay) are counted once.
    # A marker of the same user (so the same partition) comes after every copy: once it is
    # counted, a late duplicate would already show.
    marker = await post_applications(client, [user_name], 1)
    await wait_processed(pg, marker)
    await eventually(lambda: user_count(worker, user_name) >= len(ids) + 1, timeout=60)
    assert user_count(worker, user_name) == len(ids) + 1

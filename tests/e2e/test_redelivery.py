"""An application whose published event never got processed is sent again, and processed."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import asyncpg
import httpx
import pytest

from tests.harness.effects import wait_processed
from tests.harness.metrics import samples, total


async def redelivered_total(client: httpx.AsyncClient) -> float:
    metrics = samples((await client.get("/metrics")).text)
    return total(metrics, "streamapp_events_redelivered_total")


async def test_event_lost_after_publishing_is_redelivered_and_reported_as_an_error(
    client: httpx.AsyncClient,
    pg: asyncpg.Pool,
    start_worker,
    user_name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await asyncio.to_thread(start_worker)
    redelivered_before = await redelivered_total(client)
    # An application whose event was acknowledged by the broker a minute ago, yet no worker
    # processed it: what a consumer group skipping records around a rebalance leaves behind.
    async with pg.acquire() as connection:
        user_id = await connection.fetchval(
            "INSERT INTO users (user_name) VALUES ($1) RETURNING id", user_name
        )
        application = await connection.fetchrow(
            "INSERT INTO applications (user_id, description, created_at) "
            "VALUES ($1, 'lost', now() - interval '1 minute') RETURNING id, created_at",
            user_id,
        )
        event = {
            "id": application["id"],
            "user_id": user_id,
            "user_name": user_name,
            "description": "lost",
            "created_at": application["created_at"].isoformat(),
        }
        await connection.execute(
            "INSERT INTO outbox (topic, key, application_id, payload, published_at) "
            "VALUES ('new_applications', $1, $2, $3, now() - interval '1 minute')",
            user_name,
            application["id"],
            json.dumps(event),
        )

    with caplog.at_level(logging.ERROR, logger="streamapp.services.outbox"):
        await wait_processed(pg, [application["id"]], timeout=60)

    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("a worker lost" in m and str(application["id"]) in m for m in errors), errors
    assert (
        await pg.fetchval(
            "SELECT redeliveries FROM outbox WHERE application_id = $1", application["id"]
        )
        == 1
    )
    assert await redelivered_total(client) >= redelivered_before + 1


async def test_processed_applications_are_never_redelivered(
    api: Any, client: httpx.AsyncClient, pg: asyncpg.Pool, start_worker, user_name: str
) -> None:
    await asyncio.to_thread(start_worker)
    created = await client.post("/applications", json={"user_name": user_name, "description": "x"})
    application_id = created.json()["id"]
    await wait_processed(pg, [application_id])
    await pg.execute(
        "UPDATE outbox SET published_at = now() - interval '1 hour' WHERE application_id = $1",
        application_id,
    )

    await api.state.outbox.redeliver_once()

    row = await pg.fetchrow(
        "SELECT redeliveries, published_at IS NOT NULL AS published FROM outbox "
        "WHERE application_id = $1",
        application_id,
    )
    assert (row["redeliveries"], row["published"]) == (0, True)

"""`GET /applications/{id}?wait=S` answers as soon as the application is processed (woken by
the worker's NOTIFY through the API's one LISTEN connection), or after S seconds as it is."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest


async def create(client: httpx.AsyncClient, user_name: str) -> int:
    response = await client.post(
        "/applications", json={"user_name": user_name, "description": "wait for me"}
    )
    assert response.status_code == 201
    return int(response.json()["id"])


@pytest.mark.parametrize("wait", ["-1", "30.5", "31", "soon", "nan", "inf"])
async def test_a_wait_out_of_range_is_422_naming_it(
    client: httpx.AsyncClient, user_name: str, wait: str
) -> None:
    application_id = await create(client, user_name)

    response = await client.get(f"/applications/{application_id}", params={"wait": wait})

    assert response.status_code == 422
    assert [f["field"] for f in response.json()["error"]["fields"]] == ["wait"]


async def test_without_a_worker_the_answer_comes_after_the_wait(
    client: httpx.AsyncClient, user_name: str
) -> None:
    application_id = await create(client, user_name)

    started = time.monotonic()
    response = await client.get(f"/applications/{application_id}", params={"wait": "1.5"})
    took = time.monotonic() - started

    assert response.json()["status"] == "new"
    assert 1.4 < took < 5


async def test_the_answer_comes_as_soon_as_a_worker_processes_it(
    client: httpx.AsyncClient, pg: asyncpg.Pool, start_worker: Any, user_name: str
) -> None:
    application_id = await create(client, user_name)
    waiting = asyncio.create_task(
        client.get(f"/applications/{application_id}", params={"wait": "30"})
    )
    await asyncio.sleep(0.5)
    assert not waiting.done()

    await asyncio.to_thread(start_worker)
    response = await asyncio.wait_for(waiting, timeout=40)
    answered = datetime.now(UTC)

    body = response.json()
    assert body["status"] == "processed"
    processed_at = await pg.fetchval(
        "SELECT processed_at FROM applications WHERE id = $1", application_id
    )
    assert (answered - processed_at).total_seconds() < 1.0  # woken, not timed out

    started = time.monotonic()
    again = await client.get(f"/applications/{application_id}", params={"wait": "30"})
    assert again.json()["status"] == "processed"
    assert time.monotonic() - started < 1  # processed already: no wait at all

"""Load for the API: applications filed at a steady rate."""

from __future__ import annotations

import asyncio
import time

import httpx


async def steady_posts(
    client: httpx.AsyncClient, user_names: list[str], count: int, rate: float
) -> list[int]:
    """File `count` applications at `rate` per second, whatever the answers' latency.

    Every answer must be a 201; returns the ids.
    """
    ids: list[int] = []

    async def post(index: int) -> None:
        body = {"user_name": user_names[index % len(user_names)], "description": f"#{index}"}
        response = await client.post("/applications", json=body)
        assert response.status_code == 201, response.text
        ids.append(int(response.json()["id"]))

    started = time.monotonic()
    tasks = []
    for index in range(count):
        delay = started + index / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(post(index)))
    await asyncio.gather(*tasks)
    return ids

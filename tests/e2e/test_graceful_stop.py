"""SIGTERM under a POST load: `/readyz` turns 503 first while the API goes on serving, the
requests in flight complete, and after a restart no accepted application is unpublished."""

from __future__ import annotations

import asyncio
import signal
import time

import asyncpg
import httpx

from tests.harness.effects import TOPIC, event_id, json_value, read_topic
from tools.stack.processes import Api, child_env, eventually

DRAIN_SECONDS = 2.0
RATE = 150.0  # POSTs a second


async def test_sigterm_under_load_drains_first_and_loses_nothing(
    service_env: dict[str, str], pg: asyncpg.Pool, bootstrap_servers: str, user_name: str
) -> None:
    env = child_env(**{**service_env, "API_DRAIN_SECONDS": str(DRAIN_SECONDS)})
    api = Api(env)
    api.start()
    await asyncio.to_thread(api.wait_ready)
    accepted: list[int] = []
    failures: list[str] = []
    stop_posting = asyncio.Event()  # set once /readyz says 503, as a load balancer would

    async def post(client: httpx.AsyncClient, index: int) -> None:
        body = {"user_name": user_name, "description": f"#{index}"}
        try:
            response = await client.post("/applications", json=body)
        except httpx.TransportError as exc:
            failures.append(repr(exc))
            return
        if response.status_code == 201:
            accepted.append(response.json()["id"])
        else:
            failures.append(f"{response.status_code} {response.text}")

    async def load(client: httpx.AsyncClient) -> None:
        posts = []
        while not stop_posting.is_set():
            posts.append(asyncio.create_task(post(client, len(posts))))
            await asyncio.sleep(1 / RATE)
        await asyncio.gather(*posts)

    async def readiness_after_signal(client: httpx.AsyncClient) -> tuple[list[int], float]:
        assert api.process is not None
        api.process.send_signal(signal.SIGTERM)
        signalled, codes = time.monotonic(), []
        while not codes or codes[-1] != 503:
            codes.append((await client.get("/readyz")).status_code)
            await asyncio.sleep(0.05)
        stop_posting.set()
        return codes, time.monotonic() - signalled

    try:
        async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
            loading = asyncio.create_task(load(client))
            await eventually(lambda: len(accepted) >= RATE, timeout=30, interval=0.05)
            codes, turned_after = await readiness_after_signal(client)
            await loading
        assert api.process is not None
        api.process.wait(timeout=DRAIN_SECONDS + 30)
    finally:
        api.stop()

    assert failures == []
    assert len(accepted) > RATE  # the load ran for more than a second
    assert set(codes[:-1]) <= {200}
    assert turned_after < DRAIN_SECONDS / 2  # 503 first, long before the server stopped

    restarted = Api(env)
    restarted.start()
    try:
        await asyncio.to_thread(restarted.wait_ready)
        wanted = set(accepted)
        found = await read_topic(
            bootstrap_servers,
            TOPIC,
            lambda record: event_id(record) in wanted,
            timeout=60,
            count=len(wanted),
        )
    finally:
        restarted.stop()
    assert {json_value(record)["id"] for record in found} == wanted
    # No worker runs here, so the session API's redelivery sweep may already be sending some
    # again (their published_at cleared): those had been published, which is what counts.
    unpublished = await pg.fetchval(
        "SELECT count(*) FROM outbox WHERE application_id = ANY($1) AND published_at IS NULL "
        "AND redeliveries = 0",
        accepted,
    )
    assert unpublished == 0

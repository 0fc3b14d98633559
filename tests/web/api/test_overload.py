"""A running `streamapp api` sheds what it cannot serve in time: a request that finds no turn
(API_MAX_CONCURRENCY, API_QUEUE_TIMEOUT) or no free database connection (DB_POOL_TIMEOUT)
gets 503 with Retry-After at once, stores nothing, and the probes still answer.

A statement held on a table lock stands in for a slow database: the API's requests wait on
it exactly as on a busy server."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager

import asyncpg
import httpx
import pytest

from tools.stack.processes import Api, child_env, eventually

QUEUE_TIMEOUT = 0.3
POOL_TIMEOUT = 0.3
StartApi = Callable[..., Api]


@pytest.fixture
def start_api(service_env: dict[str, str]) -> Iterator[StartApi]:
    started: list[Api] = []

    def start(**settings: str) -> Api:
        api = Api(child_env(**service_env, **settings)).start()
        started.append(api)
        api.wait_ready()
        return api

    yield start
    for api in started:
        api.stop()


@asynccontextmanager
async def users_locked(pg: asyncpg.Pool) -> AsyncIterator[None]:
    """Hold the users table: every listing and filing waits on it (as on a slow server)."""
    async with pg.acquire() as connection, connection.transaction():
        await connection.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        yield


async def a_statement_waits_on_the_lock(pg: asyncpg.Pool) -> None:
    async def waiting() -> bool:
        sql = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        return bool(await pg.fetchval(sql))

    await eventually(waiting, timeout=10, interval=0.05)


def listing(api: Api, user_name: str) -> httpx.Response:
    return httpx.get(f"{api.url}/applications", params={"user_name": user_name}, timeout=30)


def post(api: Api, user_name: str, description: str) -> httpx.Response:
    body = {"user_name": user_name, "description": description}
    return httpx.post(f"{api.url}/applications", json=body, timeout=30)


def shed(api: Api, reason: str) -> float:
    metrics = httpx.get(f"{api.url}/metrics", timeout=10).text
    line = f'streamapp_requests_shed_total{{reason="{reason}"}} '
    values = [float(row.removeprefix(line)) for row in metrics.splitlines() if row.startswith(line)]
    return values[0] if values else 0.0


async def test_a_request_that_finds_no_turn_gets_503_at_once(
    start_api: StartApi, pg: asyncpg.Pool
) -> None:
    api = start_api(API_MAX_CONCURRENCY="1", API_QUEUE_TIMEOUT=str(QUEUE_TIMEOUT))
    user_name = f"shed-{uuid.uuid4().hex[:8]}"

    async with users_locked(pg):
        held = asyncio.create_task(asyncio.to_thread(listing, api, user_name))
        await a_statement_waits_on_the_lock(pg)  # the only turn is taken

        started = time.monotonic()
        refused = await asyncio.to_thread(post, api, user_name, "refused")
        waited = time.monotonic() - started
        probes = [httpx.get(f"{api.url}/{path}", timeout=5) for path in ("healthz", "readyz")]

    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "1"
    assert refused.json()["error"]["code"] == "service_unavailable"
    assert waited < QUEUE_TIMEOUT + 1.0
    assert [probe.status_code for probe in probes] == [200, 200]
    assert (await held).status_code == 200
    assert shed(api, "queue") == 1
    assert await pg.fetchval("SELECT count(*) FROM applications WHERE description = 'refused'") == 0
    assert (await asyncio.to_thread(post, api, user_name, "after")).status_code == 201


async def test_a_request_that_finds_no_free_connection_gets_503_and_stores_nothing(
    start_api: StartApi, pg: asyncpg.Pool
) -> None:
    api = start_api(
        DB_POOL_MIN_SIZE="1",
        DB_POOL_MAX_SIZE="1",
        DB_POOL_TIMEOUT=str(POOL_TIMEOUT),
        API_MAX_CONCURRENCY="0",  # no turns: the pool's bound alone
    )
    user_name = f"pool-{uuid.uuid4().hex[:8]}"
    description = f"refused-{uuid.uuid4().hex[:8]}"

    async with users_locked(pg):
        held = asyncio.create_task(asyncio.to_thread(listing, api, user_name))
        await a_statement_waits_on_the_lock(pg)  # the only connection is taken

        started = time.monotonic()
        refused_post = await asyncio.to_thread(post, api, user_name, description)
        refused_get = await asyncio.to_thread(listing, api, user_name)
        waited = time.monotonic() - started
        ready = httpx.get(f"{api.url}/readyz", timeout=5)

    assert [refused_post.status_code, refused_get.status_code] == [503, 503]
    assert refused_post.headers["Retry-After"] == "1"
    assert "busy" in refused_post.json()["error"]["message"]
    assert waited < 2 * POOL_TIMEOUT + 1.0
    assert ready.status_code == 200  # busy is not broken: it stays in rotation
    assert ready.json()["database"] == "busy"
    assert (await held).status_code == 200
    assert shed(api, "pool") == 2  # the POST and the GET
    stored = "SELECT count(*) FROM applications WHERE description = $1"
    assert await pg.fetchval(stored, description) == 0
    assert (await asyncio.to_thread(post, api, user_name, "after")).status_code == 201

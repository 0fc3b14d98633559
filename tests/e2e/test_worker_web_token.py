"""WORKER_WEB_TOKEN: a worker's web port answers only callers with the token, and the
workers' own calls to each other (table_route forwarding, the scatter-gather) carry it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
import httpx
import pytest

from tests.harness.effects import post_applications, wait_processed
from tools.stack.processes import Worker, child_env, eventually, wait_for

TOKEN = "worker-token-4Fq9Xz2Lm7Rt"


@pytest.fixture
def two_workers(service_env: dict[str, str]) -> Iterator[list[Worker]]:
    env = child_env(**{**service_env, "WORKER_WEB_TOKEN": TOKEN})
    workers = [Worker(env).start() for _ in range(2)]
    try:
        for worker in workers:
            worker.wait_ready()
        wait_for(
            lambda: all(w.assigned_partitions("new_applications") for w in workers),
            timeout=60,
            message="the workers did not split the partitions",
        )
        yield workers
    finally:
        for worker in workers:
            worker.stop()


async def test_the_web_port_wants_the_token_and_workers_pass_it_on(
    two_workers: list[Worker], client: httpx.AsyncClient, pg: asyncpg.Pool
) -> None:
    first = two_workers[0]
    for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}):
        for path in ("/stats/", "/metrics/", "/table/", "/stats/users/anyone/"):
            response = await asyncio.to_thread(
                httpx.get, f"{first.url}{path}", headers=headers, timeout=10
            )
            assert response.status_code == 401, (path, response.text)
            assert response.headers["WWW-Authenticate"].startswith("Bearer")

    authorized = {"Authorization": f"Bearer {TOKEN}"}
    answer = await asyncio.to_thread(httpx.get, f"{first.url}/stats/", headers=authorized)
    assert answer.status_code == 200

    # The cluster's minutes: this worker asks the other for its part, with the token.
    def minutes() -> int:
        return httpx.get(f"{first.url}/stats/minutes/", headers=authorized, timeout=10).status_code

    await eventually(lambda: minutes() == 200, timeout=30, message="/stats/minutes/ unanswered")
    # Users of either worker, asked of the first: routed ones carry the caller's token.
    users = [f"token-{n}" for n in range(8)]
    await wait_processed(pg, await post_applications(client, users, len(users)))
    for user in users:

        def counted(user: str = user) -> bool:
            response = httpx.get(f"{first.url}/stats/users/{user}/", headers=authorized, timeout=10)
            return response.status_code == 200 and response.json()["processed"] == 1

        await eventually(counted, timeout=60, message=f"{user} not counted via the first worker")

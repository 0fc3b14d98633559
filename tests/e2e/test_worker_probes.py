"""A worker's probes as an orchestrator sees them: alive throughout; ready only while it
holds partitions, is not rebalancing or recovering, and reaches PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from streamapp.dev.postgres import EmbeddedPostgres
from tests.harness.isolated import Isolated, isolated_services
from tests.harness.postgres import PostgresServer
from tools.stack.kafka import ApacheKafka
from tools.stack.processes import Worker, eventually, free_ports

TOKEN = "probe-test-token-0123456789"


def probe(worker: Worker, path: str) -> httpx.Response:
    """The probe as a kubelet sends it: no token."""
    return httpx.get(f"{worker.url}{path}", timeout=5)


def ready(worker: Worker) -> bool:
    try:
        return probe(worker, "/readyz/").status_code == 200
    except httpx.TransportError:  # not listening yet
        return False


def not_ready_because(worker: Worker, words: str) -> bool:
    response = probe(worker, "/readyz/")
    return response.status_code == 503 and any(words in r for r in response.json()["reasons"])


@pytest.fixture
async def isolated(postgres: PostgresServer, own_kafka: ApacheKafka) -> AsyncIterator[Isolated]:
    # Bound off loopback, as in a deployment: the probes must answer without the token.
    async with isolated_services(
        postgres, own_kafka, WORKER_WEB_BIND="0.0.0.0", WORKER_WEB_TOKEN=TOKEN
    ) as setup:
        yield setup


async def test_a_worker_is_not_ready_while_its_database_is_away(
    isolated: Isolated, own_postgres: tuple[EmbeddedPostgres, str]
) -> None:
    server, url = own_postgres
    worker = Worker({**isolated.env, "DATABASE_URL": url}, web_port=free_ports(1)).start()
    try:
        await eventually(lambda: ready(worker), timeout=90, message="never ready")
        assert probe(worker, "/stats/").status_code == 401  # the rest still needs the token

        server.stop()
        await eventually(
            lambda: not_ready_because(worker, "PostgreSQL did not answer"),
            timeout=15,
            message="still ready without its database",
        )
        assert probe(worker, "/healthz/").status_code == 200

        server.start()
        await eventually(lambda: ready(worker), timeout=30, message="not ready again")
    finally:
        worker.stop()


async def test_a_worker_is_not_ready_while_its_group_rebalances(isolated: Isolated) -> None:
    first = isolated.start_worker()
    await eventually(lambda: ready(first), timeout=90, message="never ready")
    assert probe(first, "/readyz/").json()["partitions"] == list(range(6))

    second = isolated.start_worker()
    seen: list[str] = []  # the reasons of every answer that was not ready

    def both_ready() -> bool:
        response = probe(first, "/readyz/")
        if response.status_code != 200:
            seen.extend(response.json()["reasons"])
        return response.status_code == 200 and ready(second)

    await eventually(both_ready, timeout=90, interval=0.05, message="not both ready")
    assert {
        "the consumer group is rebalancing",
        "recovering its tables from their changelogs",
    } & set(seen), seen
    assert probe(first, "/healthz/").status_code == 200
    assert probe(first, "/readyz/").json()["partitions"] != list(range(6))  # shared now

"""Workers as real `streamapp worker` processes, started on demand by each test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from streamapp import migrate
from streamapp.dev.postgres import EmbeddedPostgres
from tools.stack.kafka import ApacheKafka
from tools.stack.processes import Worker, child_env


@pytest.fixture
def own_kafka() -> Iterator[ApacheKafka]:
    """A broker of the test's own, for tests whose guarantees other tests' records would blur."""
    broker = ApacheKafka()
    broker.start()
    yield broker
    broker.remove()


@pytest.fixture
def start_worker(service_env: dict[str, str]) -> Iterator[Any]:
    """Start workers on demand; every one still running is stopped after the test."""
    workers: list[Worker] = []

    def start(*, wait: bool = True) -> Worker:
        worker = Worker(child_env(**service_env)).start()
        workers.append(worker)
        if wait:
            worker.wait_ready()
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def running_worker(start_worker: Any) -> Worker:
    """One worker of the session's group, once it holds every partition of the topic."""
    worker: Worker = start_worker()
    worker.wait_holding_every_partition()
    return worker


@pytest.fixture
async def own_postgres() -> AsyncIterator[tuple[EmbeddedPostgres, str]]:
    """A migrated PostgreSQL server of the test's own (the test stops it), and its URL."""
    server = EmbeddedPostgres()
    server.start()
    url = server.create_database("streamapp_test_own")
    await asyncio.to_thread(migrate.upgrade, url)
    yield server, url
    server.close()

"""Session services: a real PostgreSQL, a real Apache Kafka, and the API running on them."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager

from streamapp import migrate
from streamapp.config import get_settings
from streamapp.dev.postgres import EmbeddedPostgres
from tests.harness.postgres import PostgresServer
from tests.harness.settings import TEST_SETTINGS
from tools.stack.kafka import ApacheKafka

# Directories whose tests run streamapp processes or brokers of their own.
_END_TO_END = ("tests/e2e/", "tests/dev/", "tests/cluster/", "tests/test_bench.py")
_CLUSTER = "tests/cluster/"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark what `make test-fast` leaves out: tests needing Kafka, and end-to-end tests."""
    for item in items:
        if {"kafka", "own_kafka"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.kafka)
        if item.nodeid.startswith(_END_TO_END):
            item.add_marker(pytest.mark.e2e)
        if item.nodeid.startswith(_CLUSTER):
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The server test databases are created on (TEST_DATABASE_URL, else embedded)."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield PostgresServer(external)
        return
    server = EmbeddedPostgres()
    server.start()
    try:
        yield PostgresServer(server.url(), embedded=server)
    finally:
        server.close()


@pytest.fixture(scope="session")
def kafka() -> Iterator[ApacheKafka | None]:
    """Apache Kafka for the session (None when TEST_KAFKA_BOOTSTRAP_SERVERS names a cluster)."""
    if os.environ.get("TEST_KAFKA_BOOTSTRAP_SERVERS"):
        yield None
        return
    broker = ApacheKafka()
    broker.start()
    try:
        yield broker
    finally:
        broker.remove()


@pytest.fixture(scope="session")
def bootstrap_servers(kafka: ApacheKafka | None) -> str:
    return kafka.bootstrap_servers if kafka else os.environ["TEST_KAFKA_BOOTSTRAP_SERVERS"]


@pytest.fixture
async def empty_database(postgres: PostgresServer) -> AsyncIterator[str]:
    """A new, empty database, dropped after the test."""
    url = await postgres.create_database()
    yield url
    await postgres.drop_database(url)


@pytest.fixture(scope="session")
async def database_url(postgres: PostgresServer) -> AsyncIterator[str]:
    """The session's database, migrated to head."""
    url = await postgres.create_database()
    await asyncio.to_thread(migrate.upgrade, url)  # Alembic runs its own event loop
    yield url
    await postgres.drop_database(url)


@pytest.fixture(scope="session")
def service_env(database_url: str, bootstrap_servers: str) -> Iterator[dict[str, str]]:
    """Point streamapp's settings (this process and its children) at the test services."""
    overrides = {
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
        **TEST_SETTINGS,
    }
    saved = {key: os.environ.get(key) for key in overrides}
    os.environ.update(overrides)
    get_settings.cache_clear()
    yield overrides
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    get_settings.cache_clear()


@pytest.fixture(scope="session")
async def pg(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A direct connection pool to the session database, for reading effects back."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def api(service_env: dict[str, str]) -> AsyncIterator[Any]:
    """The FastAPI app with its lifespan running (PostgreSQL, Faust producer, publisher)."""
    from streamapp.web.api import create_api

    application = create_api()
    async with LifespanManager(application, startup_timeout=60, shutdown_timeout=60):
        yield application


@pytest.fixture(scope="session")
async def client(api: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://streamapp") as http:
        yield http


@pytest.fixture
def user_name() -> str:
    """A user name no other test uses (the session database is shared)."""
    return f"u-{uuid.uuid4().hex[:12]}"

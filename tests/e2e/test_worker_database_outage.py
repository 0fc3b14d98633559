"""PostgreSQL stops under a running worker: it holds the batch, then processes everything."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from streamapp import migrate
from streamapp.dev.postgres import EmbeddedPostgres
from tests.harness.effects import TOPIC, wait_processed
from tests.harness.processes import Worker, child_env, wait_for


@pytest.fixture
async def own_postgres() -> AsyncIterator[tuple[EmbeddedPostgres, str]]:
    server = EmbeddedPostgres()
    server.start()
    url = server.create_database("streamapp_test_worker_outage")
    await asyncio.to_thread(migrate.upgrade, url)
    yield server, url
    server.close()


async def store_new_applications(url: str, user_name: str, count: int) -> list[dict]:
    connection = await asyncpg.connect(url)
    try:
        # Ids far from the session database's, whose events share the topic with these.
        await connection.execute("ALTER SEQUENCE applications_id_seq RESTART WITH 1000000000")
        user_id = await connection.fetchval(
            "INSERT INTO users (user_name) VALUES ($1) RETURNING id", user_name
        )
        rows = await connection.fetch(
            "INSERT INTO applications (user_id, description) "
            "SELECT $1, 'd' || n FROM generate_series(1, $2) AS n RETURNING id, created_at",
            user_id,
            count,
        )
    finally:
        await connection.close()
    return [
        {
            "id": row["id"],
            "user_id": user_id,
            "user_name": user_name,
            "description": "d",
            "created_at": row["created_at"].isoformat(),
        }
        for row in rows
    ]


async def test_worker_waits_out_a_database_outage(
    own_postgres: tuple[EmbeddedPostgres, str],
    service_env: dict[str, str],
    bootstrap_servers: str,
    user_name: str,
) -> None:
    server, url = own_postgres
    worker = Worker(child_env(**{**service_env, "DATABASE_URL": url})).start()
    try:
        worker.wait_ready()
        events = await store_new_applications(url, user_name, 5)

        await asyncio.to_thread(server.stop)
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers)
        await producer.start()
        try:
            for event in events:
                await producer.send_and_wait(
                    TOPIC, json.dumps(event).encode(), key=user_name.encode()
                )
        finally:
            await producer.stop()
        wait_for(lambda: "database unavailable" in worker.log(), timeout=30)
        await asyncio.to_thread(server.start)

        pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
        try:
            await wait_processed(pool, [event["id"] for event in events], timeout=60)
        finally:
            await pool.close()
        assert worker.process is not None
        assert worker.process.poll() is None
    finally:
        worker.stop()

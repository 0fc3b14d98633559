"""PostgreSQL stops under a running worker: it holds the batch, then processes everything."""

from __future__ import annotations

import asyncio
import json
import signal

import asyncpg
from aiokafka import AIOKafkaProducer

from streamapp.dev.postgres import EmbeddedPostgres
from streamapp.stream.topics import partition_of, user_key
from tests.harness.effects import TOPIC, wait_processed
from tests.harness.settings import TEST_SETTINGS
from tools.stack.kafka import ApacheKafka
from tools.stack.processes import Worker, child_env, eventually

PARTITIONS = 4


async def store_new_applications(url: str, user_name: str, count: int) -> list[dict]:
    connection = await asyncpg.connect(url)
    try:
        # Ids far from the session database's, whose events share the topic with these.
        await connection.execute(
            "SELECT setval('applications_id_seq', 1000000000, false) "
            "FROM applications_id_seq WHERE last_value < 1000000000"
        )
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


async def send_events(bootstrap_servers: str, events: list[dict]) -> None:
    """Put the applications' events on the topic, keyed as the API keys them."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers)
    await producer.start()
    try:
        for event in events:
            await producer.send_and_wait(
                TOPIC, json.dumps(event).encode(), key=user_key(event["user_name"])
            )
    finally:
        await producer.stop()


async def test_worker_waits_out_a_database_outage(
    own_postgres: tuple[EmbeddedPostgres, str],
    service_env: dict[str, str],
    bootstrap_servers: str,
    user_name: str,
) -> None:
    server, url = own_postgres
    worker = Worker(child_env(**{**service_env, "DATABASE_URL": url})).start()
    try:
        await asyncio.to_thread(worker.wait_ready)
        events = await store_new_applications(url, user_name, 5)

        await asyncio.to_thread(server.stop)
        await send_events(bootstrap_servers, events)
        await eventually(lambda: "database unavailable" in worker.log(), timeout=30)
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


async def test_partitions_revoked_while_a_worker_waits_out_a_database_outage(
    own_postgres: tuple[EmbeddedPostgres, str], own_kafka: ApacheKafka
) -> None:
    """Two workers hold batches they cannot store. One is stopped: it stops at once, and the
    other, its partitions revoked mid-wait, lets its batch go so the rebalance goes through.
    Once PostgreSQL is back every record is processed, with no redelivery sweep to help."""
    server, url = own_postgres
    env = child_env(
        **{
            **TEST_SETTINGS,
            "DATABASE_URL": url,
            "KAFKA_BOOTSTRAP_SERVERS": own_kafka.bootstrap_servers,
            "TOPIC_PARTITIONS": str(PARTITIONS),
            "REDELIVER_AFTER": "0",
        }
    )
    staying, stopped = Worker(env).start(), Worker(env).start()
    try:
        for worker in (staying, stopped):
            await asyncio.to_thread(worker.wait_ready)
        await eventually(
            lambda: staying.assigned_partitions(TOPIC) and stopped.assigned_partitions(TOPIC),
            timeout=60,
            message="the workers did not split the partitions",
        )
        events = [
            event
            for user in users_on_every_partition()
            for event in await store_new_applications(url, user, 50)
        ]
        await asyncio.to_thread(server.stop)
        await send_events(own_kafka.bootstrap_servers, events)
        for worker in (staying, stopped):
            await eventually(lambda w=worker: "database unavailable" in w.log(), timeout=30)

        assert stopped.process is not None
        stopped.process.send_signal(signal.SIGTERM)
        assert stopped.process.wait(timeout=20) == 0, (
            "a worker waiting on the database did not stop"
        )
        assert "unacked while the database is unavailable (stopping)" in stopped.log()
        await eventually(
            lambda: "unacked while the database is unavailable (rebalancing)" in staying.log(),
            timeout=60,
            message="the staying worker did not let its batch go for the rebalance",
        )
        await eventually(
            lambda: len(staying.assigned_partitions(TOPIC)) == PARTITIONS,
            timeout=60,
            message="the staying worker did not take over every partition",
        )
        await asyncio.to_thread(server.start)

        pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
        try:
            await wait_processed(pool, [event["id"] for event in events], timeout=60)
            processed = await pool.fetchval("SELECT sum(processed_count) FROM users")
        finally:
            await pool.close()
        assert processed == len(events)  # each moved once
        assert staying.process is not None
        assert staying.process.poll() is None
    finally:
        stopped.stop()
        staying.stop()


def users_on_every_partition() -> list[str]:
    """One user name per partition of the topic."""
    users: dict[int, str] = {}
    for n in range(1000):
        users.setdefault(partition_of(user_key(f"revoke-{n}"), PARTITIONS), f"revoke-{n}")
        if len(users) == PARTITIONS:
            return list(users.values())
    raise AssertionError("no user names for every partition")

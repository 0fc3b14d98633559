"""A real three-broker Kafka cluster: topics with replication factor 3 and
min.insync.replicas=2, an idempotent acks=all producer. Under a steady POST load the broker
that leads most `new_applications` partitions is SIGKILLed: every POST answers 201, every
accepted application is processed once in effect, the workers carry on without a restart,
and the broker rejoins when restarted."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import pytest

from streamapp import migrate
from tests.harness.effects import TOPIC, wait_processed
from tests.harness.postgres import PostgresServer
from tests.harness.settings import TEST_SETTINGS
from tests.harness.topics import leading_most, topic_state
from tools.stack.kafka import KafkaCluster
from tools.stack.load import steady_posts
from tools.stack.processes import Api, Worker, child_env, eventually

PARTITIONS = 6
COUNT, RATE = 1500, 100.0  # fifteen seconds of POSTs


@pytest.fixture(scope="session")
def kafka_cluster() -> Iterator[KafkaCluster]:
    cluster = KafkaCluster()
    cluster.start()
    yield cluster
    cluster.remove()


@pytest.fixture
async def cluster_env(
    postgres: PostgresServer, kafka_cluster: KafkaCluster
) -> AsyncIterator[dict[str, str]]:
    url = await postgres.create_database()
    await asyncio.to_thread(migrate.upgrade, url)
    yield child_env(
        **{
            **TEST_SETTINGS,
            "DATABASE_URL": url,
            "KAFKA_BOOTSTRAP_SERVERS": kafka_cluster.bootstrap_servers,
            "TOPIC_PARTITIONS": str(PARTITIONS),
            "TOPIC_REPLICATION_FACTOR": "3",
            "REDELIVER_AFTER": "0",  # no safety net: the guarantee must hold by itself
        }
    )
    await postgres.drop_database(url)


async def test_a_killed_broker_loses_nothing_and_rejoins(
    cluster_env: dict[str, str], kafka_cluster: KafkaCluster
) -> None:
    workers = [Worker(cluster_env), Worker(cluster_env)]
    api = Api(cluster_env)
    for process in (api, *workers):
        process.start()
    pool = await asyncpg.create_pool(cluster_env["DATABASE_URL"], min_size=1, max_size=2)
    try:
        await asyncio.to_thread(api.wait_ready)
        for worker in workers:
            await asyncio.to_thread(worker.wait_ready)
        await eventually(
            lambda: all(w.assigned_partitions(TOPIC) for w in workers),
            timeout=90,
            message="the workers did not split the partitions",
        )
        pids = [w.process.pid for w in workers if w.process is not None]
        partitions, in_sync = await topic_state(kafka_cluster.bootstrap_servers)
        assert in_sync == "2"
        assert all(len(p["replicas"]) == 3 for p in partitions)  # type: ignore[arg-type]
        victim = kafka_cluster.node(leading_most(partitions))

        users = [f"c-{uuid.uuid4().hex[:8]}" for _ in range(12)]
        async with httpx.AsyncClient(base_url=api.url, timeout=60) as client:
            posting = asyncio.create_task(steady_posts(client, users, COUNT, RATE))
            await asyncio.sleep(3)
            victim.kill()
            ids = await posting  # every answer a 201, or this raises

        await wait_processed(pool, ids, timeout=120)
        moved = await pool.fetchval("SELECT sum(processed_count) FROM users")
        assert moved == len(ids)  # processed once in effect, duplicates or not
        assert [w.process.pid for w in workers if w.process and w.process.poll() is None] == pids

        victim.start()

        async def rejoined() -> bool:
            partitions, _ = await topic_state(kafka_cluster.bootstrap_servers)
            return all(victim.node_id in p["isr"] for p in partitions)  # type: ignore[operator]

        for _ in range(120):
            if await rejoined():
                break
            await asyncio.sleep(0.5)
        assert await rejoined(), "the restarted broker did not catch up with every partition"
    finally:
        await pool.close()
        api.stop()
        for worker in workers:
            worker.stop()
        for node in kafka_cluster.nodes:
            if not node.running:
                node.start()

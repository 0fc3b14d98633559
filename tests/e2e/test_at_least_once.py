"""Nothing lost by construction: with the redelivery sweep off, workers stopped and killed
mid-stream (also while their batch waits on the database) leave no application unprocessed.

These run on a broker and a database of their own, so no other test's records or sweeps
can hide a loss.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import asyncpg
import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from streamapp.stream.topics import partition_of
from tests.harness.effects import (
    TOPIC,
    event_id,
    json_value,
    read_topic,
    wait_processed,
)
from tests.harness.isolated import Isolated, isolated_services
from tests.harness.postgres import PostgresServer
from tools.stack.kafka import ApacheKafka
from tools.stack.load import steady_posts
from tools.stack.processes import Worker, eventually, http_json, split_between

PARTITIONS = 6
ROUND_SIZE = 600
RATE = 200.0  # applications a second: a round lasts three seconds


@pytest.fixture
async def isolated(postgres: PostgresServer, own_kafka: ApacheKafka) -> AsyncIterator[Isolated]:
    async with isolated_services(
        postgres,
        own_kafka,
        TOPIC_PARTITIONS=str(PARTITIONS),
        REDELIVER_AFTER="0",  # the safety net is off: only the acks protect the records
        LOG_LEVEL="INFO",
    ) as setup:
        yield setup


@asynccontextmanager
async def batches_held(pg: asyncpg.Pool) -> AsyncIterator[None]:
    """Hold every worker's batch statement on a row lock (the processed total's row)."""
    async with pg.acquire() as connection, connection.transaction():
        await connection.execute("SELECT value FROM totals WHERE name = 'processed' FOR UPDATE")
        yield


async def processed_total(pg: asyncpg.Pool) -> int:
    return int(await pg.fetchval("SELECT value FROM totals WHERE name = 'processed'"))


async def processed_since(pg: asyncpg.Pool, total: int) -> bool:
    return await processed_total(pg) > total


async def batch_waiting_on_lock(pg: asyncpg.Pool) -> bool:
    """True once a worker's batch statement waits for the lock batches_held takes."""
    return bool(
        await pg.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query ILIKE '%totals%'"
        )
    )


def exited(worker: Worker) -> bool:
    return worker.process is None or worker.process.poll() is not None


async def signal_later(worker: Worker, sig: int, after: float) -> None:
    await asyncio.sleep(after)
    assert worker.process is not None
    worker.process.send_signal(sig)


async def play_round(setup: Isolated, client: httpx.AsyncClient, *, held: bool) -> list[int]:
    """Three workers; post a round; SIGTERM one and SIGKILL another mid-stream."""
    while len(setup.running()) < 3:
        setup.start_worker()
    workers = setup.running()
    for worker in workers:
        await asyncio.to_thread(worker.wait_ready)
    await eventually(lambda: split_between(workers), timeout=90, message="partitions not split")
    users = [f"r-{uuid.uuid4().hex[:8]}" for _ in range(12)]
    stopped, killed = workers[0], workers[1]
    processed_before = await processed_total(setup.pg)
    posting = asyncio.create_task(steady_posts(client, users, ROUND_SIZE, RATE))
    if held:
        await eventually(partial(processed_since, setup.pg, processed_before), timeout=30)
        async with batches_held(setup.pg):
            await eventually(partial(batch_waiting_on_lock, setup.pg), timeout=30, interval=0.05)
            await asyncio.gather(
                signal_later(stopped, signal.SIGTERM, 0), signal_later(killed, signal.SIGKILL, 0.2)
            )
            # The killed worker dies with its batch unfinished; the stopped one cannot finish
            # its own until the lock goes.
            await eventually(lambda: exited(killed), timeout=30, interval=0.05)
    else:
        await asyncio.gather(
            signal_later(stopped, signal.SIGTERM, 1.0), signal_later(killed, signal.SIGKILL, 2.0)
        )
    ids = await posting
    stopped.stop(timeout=60)  # a clean stop finishes its batch first
    killed.stop()
    return ids


async def lost(setup: Isolated, ids: list[int]) -> str:
    """Describe the applications left unprocessed: their events and partitions, the logs."""
    rows = await setup.pg.fetch(
        "SELECT a.id, u.user_name, o.published_at, o.redeliveries FROM applications a "
        "JOIN users u ON u.id = a.user_id LEFT JOIN outbox o ON o.application_id = a.id "
        "WHERE a.id = ANY($1) AND a.status = 'new'",
        ids,
    )
    described = [
        f"{r['id']} of {r['user_name']} "
        f"(partition {partition_of(r['user_name'].encode(), PARTITIONS)}"
        f", published {r['published_at']})"
        for r in rows
    ]
    logs = ", ".join(str(w.log_path) for w in setup.workers)
    states = []
    for w in setup.running():
        try:
            summary = http_json(f"{w.url}/stats/")
            states.append(f"{w.name}: flow {summary['flow']} partitions {summary['partitions']}")
        except OSError as exc:
            states.append(f"{w.name}: {exc}")
    return (
        f"unprocessed: {'; '.join(described[:10])}; {await offsets(setup, rows)}; "
        f"workers: {' | '.join(states)}; logs: {logs}"
    )


async def offsets(setup: Isolated, rows: list[asyncpg.Record]) -> str:
    """Where the lost records sit on the topic, against the group's committed offsets."""
    servers = setup.env["KAFKA_BOOTSTRAP_SERVERS"]
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets("streamapp")
    finally:
        await admin.close()
    wanted = {r["id"] for r in rows}
    found = await read_topic(servers, TOPIC, lambda r: event_id(r) in wanted, count=len(wanted))
    places = [f"id {json_value(r)['id']} at {r.partition}@{r.offset}" for r in found]
    marks = {tp.partition: meta.offset for tp, meta in committed.items() if tp.topic == TOPIC}
    return f"on the topic: {', '.join(places)}; committed: {marks}"


async def test_stopped_and_killed_workers_lose_nothing_over_several_rounds(
    isolated: Isolated,
) -> None:
    accepted: list[int] = []
    async with isolated.api_client() as client:
        for held in (False, True, False, True):
            ids = await play_round(isolated, client, held=held)
            try:
                await wait_processed(isolated.pg, ids, timeout=120)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{await lost(isolated, ids)}") from None
            accepted += ids

    rows = await isolated.pg.fetch("SELECT status, count(*) FROM applications GROUP BY status")
    assert dict(rows) == {"processed": len(accepted)}
    # Each moved once: the counters equal the rows.
    assert await isolated.pg.fetchval("SELECT sum(processed_count) FROM users") == len(accepted)
    assert await isolated.pg.fetchval("SELECT value FROM totals WHERE name = 'processed'") == len(
        accepted
    )
    assert await isolated.pg.fetchval("SELECT count(*) FROM outbox WHERE redeliveries > 0") == 0

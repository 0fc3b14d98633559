"""The LISTEN connection behind `?wait=`: announcements wake their waiters, and a connection
whose server stops answering (as over a cut link, where nothing is refused) is replaced."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from functools import partial

import asyncpg
import pytest

from streamapp.services import processed_feed
from streamapp.services.processed_feed import ProcessedFeed
from streamapp.services.processing import PROCESSED_CHANNEL
from tests.harness.postgres import PostgresServer
from tools.stack.processes import eventually

TIMEOUT = 2.0


@pytest.fixture
async def feed(database_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ProcessedFeed]:
    monkeypatch.setattr(processed_feed, "PROBE_INTERVAL", 0.2)
    listening = ProcessedFeed(database_url, max_backoff=0.5, timeout=TIMEOUT)
    await listening.start()
    await eventually(lambda: listening.listening, timeout=10)
    yield listening
    await listening.stop()


async def listener_pid(pg: asyncpg.Pool) -> int | None:
    return await pg.fetchval(
        "SELECT pid FROM pg_stat_activity WHERE application_name = $1 "
        "AND datname = current_database() ORDER BY backend_start DESC LIMIT 1",
        processed_feed.APPLICATION_NAME,
    )


async def announced(feed: ProcessedFeed, pg: asyncpg.Pool, application_id: int) -> bool:
    """NOTIFY as the worker's batch does, and wait for the feed to wake the waiter."""
    with feed.waiting_for(application_id) as processed:
        await pg.execute("SELECT pg_notify($1, $2)", PROCESSED_CHANNEL, str(application_id))
        try:
            await asyncio.wait_for(processed, 2)
        except TimeoutError:
            return False
    return True


async def replaced(pg: asyncpg.Pool, stuck: int) -> bool:
    pid = await listener_pid(pg)
    return pid is not None and pid != stuck


async def test_an_announcement_wakes_its_waiter(feed: ProcessedFeed, pg: asyncpg.Pool) -> None:
    assert await announced(feed, pg, 41)


async def test_a_listen_connection_whose_server_stops_answering_is_replaced(
    feed: ProcessedFeed, pg: asyncpg.Pool, postgres: PostgresServer
) -> None:
    if postgres.embedded is None:
        pytest.skip("stops a backend process of the server: needs the embedded server")
    stuck = await listener_pid(pg)
    assert stuck is not None
    # The backend stops; its TCP connection stays up, and a query on it never returns.
    os.kill(stuck, signal.SIGSTOP)
    try:
        await eventually(
            partial(replaced, pg, stuck), timeout=30, message="the feed kept the stuck connection"
        )
        assert await announced(feed, pg, 42)
    finally:
        os.kill(stuck, signal.SIGCONT)

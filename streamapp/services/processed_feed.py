"""The feed of processed applications: one LISTEN connection per API process.

The worker's batch statement announces the ids it moved on `applications_processed`
(PostgreSQL delivers a NOTIFY at commit, so only effects that happened). The feed wakes the
requests waiting for those ids (`GET /applications/{id}?wait=S`), with no polling per request,
and tells its listeners (the dashboard's feed).
Notifications sent while the connection is down are missed; a waiter then answers after its
wait with the status it reads, which is right either way. An idle connection never learns
that a cut link took its server away, so the feed asks the server every few seconds and
listens again on a new connection when it does not answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import asyncpg

from streamapp.db import UNAVAILABLE_ERRORS
from streamapp.services.processing import PROCESSED_CHANNEL

logger = logging.getLogger(__name__)

# Seconds between the checks that the LISTEN connection's server still answers.
PROBE_INTERVAL = 5.0
# How the connection shows in pg_stat_activity.
APPLICATION_NAME = "streamapp-processed-feed"


class ProcessedFeed:
    def __init__(self, dsn: str, max_backoff: float, timeout: float) -> None:
        self._dsn = dsn
        self._max_backoff = max_backoff
        self._timeout = timeout  # for connecting, and for each check's answer
        self._waiters: defaultdict[int, set[asyncio.Future[None]]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[Sequence[int]], None]] = []
        self.listening = False

    def add_listener(self, listener: Callable[[Sequence[int]], None]) -> None:
        """Call `listener` with the ids of every announcement."""
        self._listeners.append(listener)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="processed-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @contextlib.contextmanager
    def waiting_for(self, application_id: int) -> Iterator[asyncio.Future[None]]:
        """A future resolved when the application is announced as processed."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[application_id].add(future)
        try:
            yield future
        finally:
            waiters = self._waiters.get(application_id)
            if waiters is not None:
                waiters.discard(future)
                if not waiters:
                    del self._waiters[application_id]

    def _announced(self, _: Any, __: int, ___: str, payload: str) -> None:
        ids = [int(text) for text in payload.split(",") if text.isdigit()]
        for application_id in ids:
            for future in self._waiters.pop(application_id, ()):
                if not future.done():
                    future.set_result(None)
        for listener in self._listeners:
            listener(ids)

    async def _listen(self) -> None:
        delay = 0.5
        while True:
            try:
                await self._listen_once()
                delay = 0.5
            except UNAVAILABLE_ERRORS as exc:
                logger.warning("processed feed: cannot listen (%s); retrying", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_backoff)

    async def _listen_once(self) -> None:
        """Listen until the connection ends or its server stops answering."""
        connection = await asyncpg.connect(
            self._dsn, timeout=self._timeout, server_settings={"application_name": APPLICATION_NAME}
        )
        ended = asyncio.Event()
        try:
            connection.add_termination_listener(lambda _: ended.set())
            await connection.add_listener(PROCESSED_CHANNEL, self._announced)
            self.listening = True
            logger.info("processed feed: listening on %s", PROCESSED_CHANNEL)
            await self._watch(connection, ended)
        finally:
            self.listening = False
            with contextlib.suppress(*UNAVAILABLE_ERRORS):
                await connection.close(timeout=2)

    async def _watch(self, connection: asyncpg.Connection, ended: asyncio.Event) -> None:
        """Return when the connection ends, or when its server does not answer a check."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ended.wait(), PROBE_INTERVAL)
                logger.warning("processed feed: the connection ended; listening again")
                return
            try:
                await connection.fetchval("SELECT 1", timeout=self._timeout)
            except UNAVAILABLE_ERRORS:
                logger.warning(
                    "processed feed: no answer from PostgreSQL in %gs; listening again",
                    self._timeout,
                )
                connection.terminate()
                return

"""The outbox: events committed with their application, then published to Kafka.

Nothing is lost: the row is committed before any send, and stays unpublished until the broker
acknowledged it. Each row is sent to its own `topic` with its own `key`, its stored payload
as it is. A record may be sent twice (fast path and relay race, or a crash before the row is
marked); the agent's idempotent UPDATE makes that harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from databases import Database
from opentelemetry.trace import Span

from streamapp import tracing
from streamapp.db import UNAVAILABLE_ERRORS, raw_connection
from streamapp.metrics import (
    EVENT_SEND_FAILURES,
    EVENTS_PUBLISHED,
    EVENTS_REDELIVERED,
    OUTBOX_BACKLOG,
    OUTBOX_OLDEST_SECONDS,
    PUBLISH_SECONDS,
)
from streamapp.models.tables import STATUS_NEW
from streamapp.retry import repeat
from streamapp.tracing import TRACEPARENT_HEADER

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """One committed outbox row: where it goes and the bytes it carries."""

    id: int
    topic: str
    key: str | None
    payload: bytes
    request_id: str | None = None
    traceparent: str | None = None  # the POST's trace, when tracing was on
    created: float = 0.0  # when the row was committed (epoch seconds): publish latency

    @classmethod
    def from_row(cls, row: Any, *, id_column: str = "id") -> OutboxEvent:
        """Build it from a row with the outbox id (in `id_column`), topic, key, payload (JSON
        as text), request_id, traceparent and created (epoch seconds)."""
        return cls(
            row[id_column],
            row["topic"],
            row["key"],
            row["payload"].encode(),
            row["request_id"],
            row["traceparent"],
            row["created"],
        )

    def headers(self, traceparent: str | None = None) -> list[tuple[str, bytes]]:
        """The record's headers: the request id and the trace (`traceparent`: its send's
        span, else the POST's), when the event has them."""
        headers = [(REQUEST_ID_HEADER, self.request_id.encode())] if self.request_id else []
        if traceparent := traceparent or self.traceparent:
            headers.append((TRACEPARENT_HEADER, traceparent.encode()))
        return headers


REQUEST_ID_HEADER = "x-request-id"
# send(topic, key, value, headers) -> awaitable that completes when the broker acknowledges
# the record.
SendFunction = Callable[
    [str, bytes | None, bytes, list[tuple[str, bytes]]], Awaitable[Awaitable[object]]
]

_CLAIM_SQL = """
SELECT id, topic, key, payload::text AS payload, request_id, traceparent,
       extract(epoch FROM created_at)::float8 AS created
FROM outbox
WHERE published_at IS NULL AND created_at < now() - make_interval(secs => $1)
ORDER BY id LIMIT $2
FOR UPDATE SKIP LOCKED
"""
# Both read through the partial index of unpublished rows: as cheap as the backlog is small.
_BACKLOG_SQL = """
SELECT count(*) AS size,
       coalesce(extract(epoch FROM now() - (
           SELECT created_at FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT 1
       )), 0)::float8 AS oldest
FROM outbox WHERE published_at IS NULL
"""
_MARK_PUBLISHED_SQL = "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])"
# The rows are found by a scan (no index orders them by age; the oldest lead the table) and
# deleted by id; a row re-armed for redelivery meanwhile (published_at reset) is kept.
_PRUNE_SQL = """
DELETE FROM outbox
WHERE id = ANY(ARRAY(
    SELECT id FROM outbox WHERE published_at < now() - make_interval(secs => $1) LIMIT $2
))
AND published_at < now() - make_interval(secs => $1)
"""
# Re-arms the outbox row of an application still `new` long after its event was published;
# the relay then sends it again. Each further redelivery of the same row waits twice as long,
# at most 64 times the first wait. Workers ack a record only after its effects committed, so
# this is a safety net: anything it finds is a bug, logged as an error with the ids.
_REDELIVER_SQL = f"""
WITH waiting AS (
    SELECT id FROM applications
    WHERE status = '{STATUS_NEW}' AND created_at < now() - make_interval(secs => $1)
    ORDER BY created_at LIMIT $2
)
UPDATE outbox AS o SET published_at = NULL, redeliveries = o.redeliveries + 1
FROM waiting
WHERE o.application_id = waiting.id
  AND o.published_at < now() - make_interval(secs => $1 * power(2, least(o.redeliveries, 6)))
RETURNING o.application_id
"""  # noqa: S608
# How many ids of redelivered applications one error line names.
LOGGED_IDS = 20
PRUNE_INTERVAL_SECONDS = 60.0
PRUNE_BATCH = 10_000

FAST_PATH_QUEUE_SIZE = 10_000
FAST_PATH_BATCH = 500


class Outbox:
    """Runs the outbox loops of an API process: fast path, relay, redelivery, pruning."""

    def __init__(
        self,
        *,
        db: Database,
        send: SendFunction,
        timeout: float,
        relay_interval: float,
        relay_delay: float,
        relay_batch_size: int,
        max_backoff: float,
        retention: float,
        redeliver_after: float,
    ) -> None:
        self._db = db
        self._send = send
        self._timeout = timeout
        self._relay_interval = relay_interval
        self._relay_delay = relay_delay
        self._relay_batch_size = relay_batch_size
        self._max_backoff = max_backoff
        self._retention = retention
        self._redeliver_after = redeliver_after
        self._queue: asyncio.Queue[OutboxEvent] = asyncio.Queue(FAST_PATH_QUEUE_SIZE)
        self._tasks: list[asyncio.Task[None]] = []

    def publish_soon(self, event: OutboxEvent) -> None:
        """Queue a committed event for sending; if the queue is full the relay sends it later."""
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(event)

    async def start(self) -> None:
        """Start the loops on the running event loop."""
        loops = {
            "outbox-fast-path": self._run_fast_path(),
            "outbox-relay": self._repeat(self._relay_pass, self._relay_interval, "outbox relay"),
        }
        if self._retention > 0:
            pruning = self._repeat(self._prune_pass, PRUNE_INTERVAL_SECONDS, "outbox pruning")
            loops["outbox-pruner"] = pruning
        if self._redeliver_after > 0:
            sweep_interval = max(self._redeliver_after / 2, 1.0)
            loops["outbox-sweeper"] = self._repeat(
                self._redelivery_pass, sweep_interval, "redelivery sweep"
            )
        self._tasks = [asyncio.create_task(loop, name=name) for name, loop in loops.items()]

    async def stop(self) -> None:
        """Flush what is queued (bounded by the send timeout), then stop the loops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), self._timeout)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def _repeat(
        self, job: Callable[[], Awaitable[bool]], interval: float, what: str
    ) -> Coroutine[Any, Any, None]:
        return repeat(
            job, interval=interval, max_backoff=max(interval, self._max_backoff), what=what
        )

    async def _run_fast_path(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < FAST_PATH_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                published = await self._publish(batch, "fast")
                if published:
                    await self._mark_published(published)
                    EVENTS_PUBLISHED.labels("fast").inc(len(published))
            except Exception:
                logger.exception("fast-path publish failed; the relay will retry")
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _relay_pass(self) -> bool:
        """Run one relay pass; return False when it should back off."""
        try:
            relayed, failed = await self.relay_once()
        except UNAVAILABLE_ERRORS as exc:
            logger.warning("outbox relay cannot reach the database: %s", exc)
            return False
        if relayed:
            logger.info("outbox relay published %d pending events", relayed)
        if failed:
            logger.warning("outbox relay: %d sends failed; backing off", failed)
        return failed == 0

    async def relay_once(self) -> tuple[int, int]:
        """Publish one batch of rows older than the relay delay; return (published, failed).

        Rows stay locked (SKIP LOCKED) until marked, so relays of several API processes never
        send the same row at once. Rows whose send failed stay unpublished for a later pass.
        """
        async with raw_connection(self._db) as connection, connection.transaction():
            rows = await connection.fetch(_CLAIM_SQL, self._relay_delay, self._relay_batch_size)
            if not rows:
                return 0, 0
            published = await self._publish([OutboxEvent.from_row(r) for r in rows], "relay")
            if published:
                await connection.execute(_MARK_PUBLISHED_SQL, published)
                EVENTS_PUBLISHED.labels("relay").inc(len(published))
            return len(published), len(rows) - len(published)

    async def _redelivery_pass(self) -> bool:
        await self.redeliver_once()
        return True

    async def redeliver_once(self) -> list[int]:
        """Re-arm the events of applications left unprocessed; return their ids."""
        async with raw_connection(self._db) as connection:
            rows = await connection.fetch(
                _REDELIVER_SQL, self._redeliver_after, self._relay_batch_size
            )
        ids = sorted(row["application_id"] for row in rows)
        if ids:
            EVENTS_REDELIVERED.inc(len(ids))
            shown = ", ".join(map(str, ids[:LOGGED_IDS])) + (
                ", ..." if len(ids) > LOGGED_IDS else ""
            )
            logger.error(
                "%d applications were still new %.0fs after their event was published: "
                "no worker ran meanwhile, the backlog is older than that, or a worker lost "
                "them (a bug); sending them again. Ids: %s",
                len(ids),
                self._redeliver_after,
                shown,
            )
        return ids

    async def _prune_pass(self) -> bool:
        pruned = await self.prune_once()
        if pruned:
            logger.info("pruned %d published outbox rows", pruned)
        return True

    async def prune_once(self) -> int:
        """Delete rows published longer ago than the retention; return how many."""
        pruned = 0
        async with raw_connection(self._db) as connection:
            while True:
                status = await connection.execute(_PRUNE_SQL, self._retention, PRUNE_BATCH)
                deleted = int(status.split()[-1])
                pruned += deleted
                if deleted < PRUNE_BATCH:
                    return pruned

    async def measure_backlog(self) -> tuple[int, float]:
        """Set and return the backlog gauges: unpublished events, age of the oldest."""
        async with raw_connection(self._db) as connection:
            row = await connection.fetchrow(_BACKLOG_SQL)
        OUTBOX_BACKLOG.set(row["size"])
        OUTBOX_OLDEST_SECONDS.set(row["oldest"])
        return row["size"], row["oldest"]

    async def _publish(self, events: Sequence[OutboxEvent], path: str) -> list[int]:
        """Send every event; return the ids of those the broker acknowledged in time.

        The sends are queued at once and their acknowledgements awaited together, under one
        timeout for the batch.
        """
        acknowledgements: dict[asyncio.Future[object], int] = {}
        error: BaseException | None = None
        try:
            async with asyncio.timeout(self._timeout):
                for event in events:
                    key = None if event.key is None else event.key.encode()
                    span = tracing.start_send(event.traceparent, event.topic, path)
                    headers = event.headers(tracing.traceparent_of(span) if span else None)
                    future = asyncio.ensure_future(
                        await self._send(event.topic, key, event.payload, headers)
                    )
                    future.add_done_callback(_retrieve_error)
                    if span is not None:
                        future.add_done_callback(functools.partial(_end_send, span))
                    acknowledgements[future] = event.id
                await asyncio.wait(acknowledgements)
        except Exception as exc:  # the producer refused a send, or the time ran out
            error = exc
        published = [
            outbox_id for future, outbox_id in acknowledgements.items() if _acknowledged(future)
        ]
        _observe_publish_latency(events, set(published), path)
        failed = len(events) - len(published)
        if failed:
            EVENT_SEND_FAILURES.inc(failed)
            error = error or next(
                (f.exception() for f in acknowledgements if f.done() and not f.cancelled()), None
            )
            logger.warning("%d of %d sends failed: %r", failed, len(events), error)
        return published

    async def _mark_published(self, outbox_ids: Sequence[int]) -> None:
        async with raw_connection(self._db) as connection:
            await connection.execute(_MARK_PUBLISHED_SQL, list(outbox_ids))


def _end_send(span: Span, future: asyncio.Future[object]) -> None:
    error = None if future.cancelled() else future.exception()
    tracing.end_send(span, error or (TimeoutError() if future.cancelled() else None))


def _observe_publish_latency(events: Sequence[OutboxEvent], acked: set[int], path: str) -> None:
    now = time.time()
    histogram = PUBLISH_SECONDS.labels(path)
    for event in events:
        if event.id in acked and event.created:
            histogram.observe(max(0.0, now - event.created))


def _acknowledged(future: asyncio.Future[object]) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None


def _retrieve_error(future: asyncio.Future[object]) -> None:
    # A send that fails after its batch gave up is counted already; do not log it again.
    if not future.cancelled():
        future.exception()

"""Filing applications many to a statement (group commit).

Each application goes into the next statement to start, together with those of every request
that arrived while the statements before it ran. A lone request is stored at once; under load
one statement (one round trip, one commit, one WAL flush) stores dozens. Each request still
gets its own answer, after the commit that stored its application.

An application the batch could not store goes through the one-row statement on its own:
an Idempotency-Key already taken (a retry: replayed, or 409), the same new user created by a
concurrent request, or an error of the batch that is not the database being unavailable. So
one bad row never fails the others, and every outcome is the one-row statement's.

Each stored application's event is queued for publishing as soon as it is committed, whether
or not its request is still waiting for the answer.

A statement of many runs in no request's context (its trace, its request id): it is not any
one request's. An application stored on its own is stored in its request's context.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from databases import Database

from streamapp.db import UNAVAILABLE_ERRORS, raw_connection
from streamapp.errors import Overloaded
from streamapp.metrics import APPLICATIONS_CREATED
from streamapp.models.schemas import ApplicationCreate
from streamapp.services import applications
from streamapp.services.applications import Created, Replayed, request_hash
from streamapp.services.outbox import OutboxEvent

logger = logging.getLogger(__name__)

# A batch that failed for these is answered 503: storing its filings one by one would fail too.
_NOT_NOW: tuple[type[Exception], ...] = (*UNAVAILABLE_ERRORS, Overloaded)

# Statements in flight at once: one running while the next fills is what lets batches form;
# a second keeps both cores of the database busy. More only queue on the pool.
IN_FLIGHT = 2
# The most applications one statement stores.
MAX_BATCH = 500


@dataclass(slots=True)
class _Filing:
    """One request's application, and the future its answer is set on."""

    application_in: ApplicationCreate
    idempotency_key: str | None
    request_id: str | None
    traceparent: str | None
    fingerprint: str | None
    answer: asyncio.Future[Created | Replayed] = field(repr=False)
    # The request's context (its trace, its request id), for a statement of its own.
    context: contextvars.Context = field(default_factory=contextvars.copy_context, repr=False)

    def resolve(self, result: Created | Replayed) -> None:
        if not self.answer.done():  # its request may have been cancelled meanwhile
            self.answer.set_result(result)

    def fail(self, error: BaseException) -> None:
        if not self.answer.done():
            self.answer.set_exception(error)


class Filer:
    """Stores applications with their outbox events, many per statement."""

    def __init__(
        self,
        db: Database,
        *,
        topic: str,
        publish: Callable[[OutboxEvent], None],
        max_batch: int = MAX_BATCH,
        in_flight: int = IN_FLIGHT,
    ) -> None:
        self._db = db
        self._topic = topic
        self._publish = publish
        self._max_batch = max_batch
        self._in_flight = in_flight
        self._waiting: list[_Filing] = []
        self._running: set[asyncio.Task[None]] = set()
        self._listeners: list[Callable[[Mapping[str, Any]], None]] = []

    def add_listener(self, listener: Callable[[Mapping[str, Any]], None]) -> None:
        """Call `listener` with each application this filer stores, once committed."""
        self._listeners.append(listener)

    async def file(
        self,
        application_in: ApplicationCreate,
        *,
        idempotency_key: str | None = None,
        request_id: str | None = None,
        traceparent: str | None = None,
    ) -> Created | Replayed:
        """Store an application and queue its event; replay the first result for a reused key.

        Raises what the one-row statement raises (IdempotencyKeyReused, the database's errors).
        """
        fingerprint = request_hash(application_in) if idempotency_key else None
        answer: asyncio.Future[Created | Replayed] = asyncio.get_running_loop().create_future()
        filing = _Filing(
            application_in, idempotency_key, request_id, traceparent, fingerprint, answer
        )
        self._waiting.append(filing)
        if len(self._running) < self._in_flight:
            # Not in this request's context: the task stores other requests' filings too.
            task = asyncio.create_task(
                self._store_waiting(), name="filer", context=contextvars.Context()
            )
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        try:
            return await answer
        except asyncio.CancelledError:
            # Given up (the request's deadline): if no statement took it yet, none will.
            self._waiting = [waiting for waiting in self._waiting if waiting is not filing]
            raise

    async def close(self) -> None:
        """Wait for the statements in flight, so their events are queued before the outbox
        stops."""
        while self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    async def _store_waiting(self) -> None:
        while self._waiting:
            batch = self._waiting[: self._max_batch]
            del self._waiting[: self._max_batch]
            try:
                await self._store(batch)
            except BaseException as exc:  # cancelled at shutdown: nobody is left hanging
                for filing in batch:
                    filing.fail(exc)
                raise

    async def _store(self, batch: list[_Filing]) -> None:
        try:
            stored = await self._insert(batch) if len(batch) > 1 else {}
        except _NOT_NOW as exc:  # one by one would not fare better
            for filing in batch:
                filing.fail(exc)
            return
        except Exception:
            logger.warning("storing %d applications at once failed; one by one", len(batch))
            stored = {}
        alone = []
        for position, filing in enumerate(batch, start=1):
            created = stored.get(position)
            if created is None:
                alone.append(filing)
            else:
                self._filed(created)
                filing.resolve(created)
        if alone:
            await asyncio.gather(
                *(
                    asyncio.create_task(self._store_alone(filing), context=filing.context)
                    for filing in alone
                )
            )

    async def _insert(self, batch: Sequence[_Filing]) -> dict[int, Created]:
        """Store the batch in one statement; return what it stored, by position (from 1)."""
        filings = [
            (f.application_in, f.idempotency_key, f.fingerprint, f.request_id, f.traceparent)
            for f in batch
        ]
        async with raw_connection(self._db) as connection:
            return await applications.insert(connection, filings, topic=self._topic)

    async def _store_alone(self, filing: _Filing) -> None:
        try:
            result = await applications.create(
                db=self._db,
                application_in=filing.application_in,
                topic=self._topic,
                idempotency_key=filing.idempotency_key,
                request_id=filing.request_id,
                traceparent=filing.traceparent,
                fingerprint=filing.fingerprint,
            )
        except Exception as exc:
            filing.fail(exc)
            return
        if isinstance(result, Created):
            self._filed(result)
        filing.resolve(result)

    def _filed(self, created: Created) -> None:
        APPLICATIONS_CREATED.inc()
        self._publish(created.event)
        for listener in self._listeners:
            listener(created.application)

"""The agent that processes `new_applications` in batches."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from databases import Database

from streamapp import tracing
from streamapp.agents.table_writes import write_counts
from streamapp.config import get_settings
from streamapp.db import UNAVAILABLE_ERRORS
from streamapp.metrics import (
    BATCH_SECONDS,
    END_TO_END_SECONDS,
    RECORDS_ALREADY_PROCESSED,
    RECORDS_DEAD_LETTERED,
    RECORDS_PROCESSED,
)
from streamapp.models.records import (
    ApplicationCreated,
    DeadLetterRecord,
    InvalidRecord,
    decode_application,
)
from streamapp.retry import Backoff, RetryStopped, retry
from streamapp.services import processing
from streamapp.services.outbox import REQUEST_ID_HEADER
from streamapp.services.processing import ProcessedBatch
from streamapp.stream.app import app, dead_letters, new_applications
from streamapp.stream.delivery import Delivery
from streamapp.stream.topics import NEW_APPLICATIONS
from streamapp.tracing import TRACEPARENT_HEADER

logger = logging.getLogger(__name__)

# What a batch of undecodable records did.
NOTHING_DONE = ProcessedBatch(frozenset(), frozenset(), {}, {})
delivery: Delivery[ProcessedBatch] = Delivery(app, write_counts)


@app.agent(new_applications)
async def process_applications(stream: Any) -> AsyncIterator[int]:
    """Mark each batch of new applications processed and keep the per-user counts.

    Acks follow effects (see `streamapp.stream.delivery`): a batch is marked done once its
    UPDATE has committed and its dead letters are stored, and its records are acked once its
    counts are in the tables. A batch cut short (a stop or a rebalance during a database
    outage, a crash) is released, never acked, so its records are consumed again.
    """
    settings = get_settings()
    size, wait = settings.worker_batch_size, settings.worker_batch_wait
    async with delivery.take(stream, size=size, wait=wait) as taken:
        async for events in taken:
            batch = await _process(events, settings.outbox_max_backoff)
            if batch is not None:
                yield len(batch.moved)


async def _process(events: Sequence[Any], max_backoff: float) -> ProcessedBatch | None:
    """Apply one batch and mark it done; None if it was released unprocessed."""
    started = time.perf_counter()
    try:
        with tracing.batch_span(NEW_APPLICATIONS, _traceparents(events)):
            batch = await _apply(events, max_backoff)
    except RetryStopped:
        logger.warning(
            "left a batch of %d unacked while the database is unavailable (%s); its "
            "records will be consumed again",
            len(events),
            "stopping" if app.should_stop else "rebalancing",
        )
        await delivery.release(events)
        return None
    except BaseException:
        await delivery.release(events)
        raise
    BATCH_SECONDS.observe(time.perf_counter() - started)
    await delivery.done(events, batch)
    return batch


@app.timer(interval=60.0, on_leader=True)  # type: ignore[untyped-decorator]
async def prune_minute_counts() -> None:
    """Forget per-minute counts the tables no longer need (one worker does it)."""
    if app.database is None:
        return
    try:
        await processing.prune_minutes(app.database)
    except UNAVAILABLE_ERRORS as exc:
        logger.warning("could not prune per-minute counts: %s", exc)


async def _apply(events: Sequence[Any], max_backoff: float) -> ProcessedBatch:
    """Process one batch of events; return what it did.

    Dead-letters what does not decode, and records naming no stored application. Raises
    RetryStopped if the worker stops or rebalances while waiting out a database outage.
    """
    decoded: list[tuple[Any, ApplicationCreated]] = []
    stored: list[Awaitable[Any]] = []
    for event in events:
        try:
            decoded.append((event, decode_application(event.value)))
        except InvalidRecord as exc:
            stored.append(await _dead_letter(event, str(exc)))
    batch = NOTHING_DONE
    if decoded:
        batch = await _until_database_answers([record for _, record in decoded], max_backoff)
        for event, record in decoded:
            if record.id in batch.unknown:
                stored.append(await _dead_letter(event, f"no application with id {record.id}"))
        if logger.isEnabledFor(logging.DEBUG):
            _log_each(decoded, batch)
    await asyncio.gather(*stored)
    return batch


def _log_each(decoded: Sequence[tuple[Any, ApplicationCreated]], batch: ProcessedBatch) -> None:
    """One line per application, with the request id of the POST that filed it (DEBUG only:
    at a backlog's pace this would cost more than the batch)."""
    for event, record in decoded:
        if record.id in batch.unknown:
            continue
        state = "processed" if record.id in batch.moved else "already processed"
        rid = request_id_of(event.message.headers)
        logger.debug(
            "application %d of %r: %s",
            record.id,
            record.user_name,
            state,
            extra={"request_id": rid},
        )


def _traceparents(events: Sequence[Any]) -> list[str | None]:
    """The traceparent header of each record (tracing on only: it costs a pass per batch)."""
    if not tracing.enabled():
        return []
    return [header_of(event.message.headers, TRACEPARENT_HEADER) for event in events]


def request_id_of(headers: Any) -> str | None:
    """The x-request-id header of a record."""
    return header_of(headers, REQUEST_ID_HEADER)


def header_of(headers: Any, wanted: str) -> str | None:
    """A header of a record, as text (Faust gives headers as pairs or as a mapping)."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    for name, value in pairs:
        if name == wanted and isinstance(value, bytes):
            return value.decode("utf-8", errors="replace")
    return None


async def _until_database_answers(
    records: Sequence[ApplicationCreated], max_backoff: float
) -> ProcessedBatch:
    """Process the batch, waiting out a PostgreSQL outage instead of crashing the worker.

    The batch's offsets are not committed meanwhile, so nothing is skipped; the effects are
    idempotent, so a batch that failed half-way is safe to apply again. A stop or a rebalance
    ends the wait (RetryStopped): Faust waits for every record in hand to be acked before
    either goes on, and these records are consumed again anyway.
    """
    return await retry(
        lambda: process_batch(records),
        retry_on=UNAVAILABLE_ERRORS,
        what=f"database unavailable for a batch of {len(records)}",
        backoff=Backoff(0.5, max_backoff),
        stop=lambda: bool(app.should_stop or app.rebalancing),
    )


async def process_batch(records: Sequence[ApplicationCreated]) -> ProcessedBatch:
    """Apply one batch; return what it did, with the counts the tables take.

    Redelivered records change nothing: the UPDATE moves only rows still `new`. The tables
    take the counts stored in PostgreSQL with the batch, so they also heal after a crash
    between the UPDATE and the changelog write.
    """
    # Each record's created_at in epoch seconds, made once for the minutes and the delays.
    created = [record.created_at.timestamp() for record in records]
    batch = await processing.mark_processed(
        db=_database(),
        application_ids=[record.id for record in records],
        user_names=list({record.user_name for record in records}),
        user_minutes=_user_minutes(records, created),
    )
    moved, unknown = len(batch.moved), len(batch.unknown)
    already = len(records) - moved - sum(1 for record in records if record.id in batch.unknown)
    RECORDS_PROCESSED.inc(moved)
    _observe_end_to_end(records, created, batch.moved)
    RECORDS_ALREADY_PROCESSED.inc(already)
    logger.info(
        "batch of %d: %d processed, %d already processed, %d unknown",
        len(records),
        moved,
        already,
        unknown,
    )
    return batch


def _user_minutes(
    records: Sequence[ApplicationCreated], created: Sequence[float]
) -> set[tuple[str, datetime]]:
    """Each user's minutes (their start, in UTC) that the records were filed in."""
    # Numbered first: a batch spans a few minutes, so few datetimes need to be made.
    minutes = {(record.user_name, at // 60) for record, at in zip(records, created, strict=True)}
    return {(user, datetime.fromtimestamp(minute * 60, UTC)) for user, minute in minutes}


def _observe_end_to_end(
    records: Sequence[ApplicationCreated], created: Sequence[float], moved: frozenset[int]
) -> None:
    """created_at -> processed, for the applications this batch moved (not redeliveries)."""
    now = time.time()
    END_TO_END_SECONDS.observe_many(
        max(0.0, now - at)
        for record, at in zip(records, created, strict=True)
        if record.id in moved
    )


async def _dead_letter(event: Any, reason: str) -> Awaitable[Any]:
    """Send the record to the dead-letter topic; the result resolves once it is stored."""
    message = event.message
    where = f"{message.topic}[{message.partition}]@{message.offset}"
    logger.warning("dead-lettering record at %s: %s", where, reason)
    RECORDS_DEAD_LETTERED.inc()
    letter = DeadLetterRecord(
        reason=reason,
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        value=_printable(event.value),
        truncated=event.value is not None and len(event.value) > DEAD_LETTER_VALUE_MAX,
    )
    return await dead_letters.send(key=message.key, value=letter.model_dump())


# The most of a record's value a dead letter keeps: the letter must fit in a Kafka message
# (1 MiB by default) whatever the record was.
DEAD_LETTER_VALUE_MAX = 64 * 1024


def _printable(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    return raw[:DEAD_LETTER_VALUE_MAX].decode("utf-8", errors="replace")


def _database() -> Database:
    if app.database is None:
        raise RuntimeError("the worker's database is not connected")
    return app.database

"""The agent that processes `new_applications` in batches."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Any

from databases import Database

from streamapp.config import get_settings
from streamapp.db import UNAVAILABLE_ERRORS
from streamapp.metrics import RECORDS_ALREADY_PROCESSED, RECORDS_DEAD_LETTERED, RECORDS_PROCESSED
from streamapp.models.records import ApplicationCreated, InvalidRecord, decode_application
from streamapp.retry import Backoff, retry
from streamapp.services import applications as applications_service
from streamapp.stream.app import app, dead_letters, new_applications
from streamapp.stream.batches import batches
from streamapp.stream.tables import applications_per_user, user_key

logger = logging.getLogger(__name__)


@app.agent(new_applications)
async def process_applications(stream: Any) -> AsyncIterator[int]:
    """Mark each batch of new applications processed and keep the per-user counts.

    Acks follow effects: a batch's events are acked only once its UPDATE has committed and
    its dead letters are stored. A batch cut short (a stop, a rebalance, a crash) is never
    acked, so its records are consumed again.
    """
    settings = get_settings()
    manual = stream.noack()
    size, idle = settings.worker_batch_size, settings.worker_batch_idle
    async for events in batches(manual, size=size, idle=idle):
        moved = await _apply(events, settings.outbox_max_backoff)
        for event in events:
            await manual.ack(event)
        yield moved


async def _apply(events: Sequence[Any], max_backoff: float) -> int:
    """Dead-letter what does not decode, process the rest; return how many moved."""
    records: list[ApplicationCreated] = []
    dead_letters_stored = []
    for event in events:
        try:
            records.append(decode_application(event.value))
        except InvalidRecord as exc:
            dead_letters_stored.append(await _dead_letter(event, str(exc)))
    await asyncio.gather(*dead_letters_stored)
    if not records:
        return 0
    return await _until_database_answers(records, max_backoff)


async def _until_database_answers(records: Sequence[ApplicationCreated], max_backoff: float) -> int:
    """Process the batch, waiting out a PostgreSQL outage instead of crashing the worker.

    The batch's offsets are not committed meanwhile, so nothing is skipped; the effects are
    idempotent, so a batch that failed half-way is safe to apply again.
    """
    return await retry(
        lambda: process_batch(records),
        retry_on=UNAVAILABLE_ERRORS,
        what=f"database unavailable for a batch of {len(records)}",
        backoff=Backoff(0.5, max_backoff),
    )


async def process_batch(records: Sequence[ApplicationCreated]) -> int:
    """Apply one batch; return how many applications it moved from new to processed.

    Redelivered records change nothing: the UPDATE moves only rows still `new`. The table
    takes the counts stored in PostgreSQL with the batch, so it also heals after a crash
    between the UPDATE and the changelog write.
    """
    batch = await applications_service.mark_processed(
        db=_database(),
        application_ids=[record.id for record in records],
        user_names=list({record.user_name for record in records}),
    )
    for user_name, count in batch.counts.items():
        key = user_key(user_name)
        if applications_per_user[key] != count.processed:
            applications_per_user[key] = count.processed
    if logger.isEnabledFor(logging.DEBUG):
        for record in records:
            state = "processed" if record.id in batch.moved else "already processed"
            logger.debug("application %d of %r: %s", record.id, record.user_name, state)
    moved, already = len(batch.moved), len(records) - len(batch.moved)
    RECORDS_PROCESSED.inc(moved)
    RECORDS_ALREADY_PROCESSED.inc(already)
    logger.info("batch of %d: %d processed, %d already processed", len(records), moved, already)
    return moved


async def _dead_letter(event: Any, reason: str) -> Awaitable[Any]:
    """Send the record to the dead-letter topic; the result resolves once it is stored."""
    message = event.message
    where = f"{message.topic}[{message.partition}]@{message.offset}"
    logger.warning("dead-lettering record at %s: %s", where, reason)
    RECORDS_DEAD_LETTERED.inc()
    return await dead_letters.send(
        key=message.key,
        value={
            "reason": reason,
            "topic": message.topic,
            "partition": message.partition,
            "offset": message.offset,
            "value": _printable(event.value),
        },
    )


def _printable(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", errors="replace")


def _database() -> Database:
    if app.database is None:
        raise RuntimeError("the worker's database is not connected")
    return app.database

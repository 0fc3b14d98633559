"""The tables' writes of several batches at once, and the acks that wait for them.

Each batch names dozens of users, and each user's count and (user, minute) count is a
changelog record: written per batch, under a steady stream of small batches, that is more
records than the topic brings, and it took a third of the worker's and the broker's CPU.
So the agent keeps the latest counts of every key its batches named and writes them at most
every WRITE_INTERVAL seconds (the stream views lag PostgreSQL by that much).

The batches' records are acked only once their counts are written: a worker that dies in
between never committed them, so they are consumed again, and their batch sets the tables to
the counts stored in PostgreSQL (the heal of `process_batch`). A rebalance writes at once, so
that it does not wait for the acks, and so that the partitions' next owner recovers the
counts from the changelog.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from streamapp.minutes import first_kept_minute
from streamapp.services.applications import ProcessedBatch, UserCount
from streamapp.stream.app import app
from streamapp.stream.tables import applications_per_user, set_minute_count
from streamapp.stream.topics import user_key
from streamapp.stream.transport import Consumer

# The longest a batch's counts (and so its acks) wait to be written.
WRITE_INTERVAL = 0.5


class TableWrites:
    """Counts of processed batches not yet written to the tables, with the batches' events."""

    def __init__(self) -> None:
        self._users: dict[str, UserCount] = {}
        self._minutes: dict[tuple[str, float], int] = {}
        self._events: list[Any] = []
        self._since = 0.0  # when the oldest held batch was added
        self._stream: Any = None

    def attach(self, stream: Any) -> None:
        """The (noack) stream the held events are acked on."""
        self._stream = stream

    def hold(self, batch: ProcessedBatch, events: Sequence[Any]) -> None:
        """Keep a processed batch's counts (later batches' override) and its events."""
        if not self._events:
            self._since = time.monotonic()
        self._users.update(batch.counts)
        self._minutes.update(batch.minutes)
        self._events.extend(events)

    @property
    def due(self) -> bool:
        """Whether the held counts should be written now."""
        if not self._events:
            return False
        # A rebalance and a stop wait for the held events' acks.
        if app.rebalancing or app.should_stop:
            return True
        return time.monotonic() - self._since >= WRITE_INTERVAL

    async def write(self) -> None:
        """Write the held counts (only what changed), then ack their batches' events."""
        users, minutes, events = self._take()
        if not events:
            return
        _write_users(users)
        _write_minutes(minutes)
        cast(Consumer, app.consumer).done(event.message for event in events)
        for event in events:
            await self._stream.ack(event)

    async def release(self) -> None:
        """Let go of the held events unwritten and uncommitted: they are consumed again."""
        _, _, events = self._take()
        for event in events:
            await self._stream.ack(event)

    def _take(self) -> tuple[dict[str, UserCount], dict[tuple[str, float], int], list[Any]]:
        taken = self._users, self._minutes, self._events
        self._users, self._minutes, self._events = {}, {}, []
        return taken


def _write_users(users: dict[str, UserCount]) -> None:
    for user_name, count in users.items():
        key = user_key(user_name)
        stats = {"processed": count.processed, "last_processed_at": _iso(count.last_processed_at)}
        if applications_per_user.get(key) != stats:
            applications_per_user[key] = stats


def _write_minutes(minutes: dict[tuple[str, float], int]) -> None:
    oldest = first_kept_minute(time.time())
    for (user_name, start), processed in minutes.items():
        if start >= oldest:  # else past the hour the table keeps
            set_minute_count(user_name, start, processed)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()

"""The agent's side of the delivery contract: batches taken, marked done, written, acked.

Each batch names dozens of users, and each user's count and (user, minute) count is a
changelog record: written per batch, under a steady stream of small batches, that is more
records than the topic brings, and it took a third of the worker's and the broker's CPU.
So the effects of several batches are held and the tables written at most every
WRITE_INTERVAL seconds (the stream views lag PostgreSQL by that much); the batches' records
are acked only after that write. A worker that dies in between never committed them: they
are consumed again, and their batch sets the tables to the counts stored in PostgreSQL.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from streamapp.stream.delivery.batches import batches
from streamapp.stream.delivery.consumer import Consumer

if TYPE_CHECKING:
    from streamapp.stream.app import StreamApp

logger = logging.getLogger(__name__)

# The longest a batch's effects (and so its acks) wait to be written to the tables.
WRITE_INTERVAL = 0.5
# How often held effects are looked at while the stream is idle.
WRITE_CHECK_INTERVAL = 0.1
# How often partitions are checked for commits stuck behind records nobody holds.
STUCK_CHECK_INTERVAL = 1.0

Effects = TypeVar("Effects")


class Delivery(Generic[Effects]):
    """Takes one agent's batches and acks them only once their effects are in the tables.

    `write_tables` is given the effects of every batch held since the last write, oldest
    first, and writes them to the stream tables.
    """

    def __init__(
        self,
        app: StreamApp,
        write_tables: Callable[[Sequence[Effects]], None],
        *,
        write_interval: float = WRITE_INTERVAL,
    ) -> None:
        self._app = app
        self._write = write_tables
        self._interval = write_interval
        self._effects: list[Effects] = []
        self._events: list[Any] = []
        self._since = 0.0  # when the oldest held batch was marked done
        self._stream: Any = None
        app.before_stop.append(self.stop)
        app.timer(interval=WRITE_CHECK_INTERVAL, name="delivery.write_due_tables")(
            self._write_when_due
        )
        app.timer(interval=STUCK_CHECK_INTERVAL, name="delivery.reread_stuck_partitions")(
            self._reread_stuck
        )

    @contextlib.asynccontextmanager
    async def take(
        self, stream: Any, *, size: int, wait: float
    ) -> AsyncIterator[AsyncIterator[list[Any]]]:
        """Batches of an agent's stream (at most `size` events, a lone one waits `wait`
        seconds), acked by this contract only, never by Faust's stream itself."""
        self._stream = stream.noack()
        try:
            async with contextlib.aclosing(batches(self._stream, size=size, wait=wait)) as taken:
                yield taken
        except BaseException:
            # Not processed to the end (a bug, a cancellation): let go of what is held, or a
            # rebalance and the stop would wait for its acks.
            await self.release(self._take()[1])
            raise
        await self.write_tables()

    async def done(self, events: Sequence[Any], effects: Effects) -> None:
        """The batch's effects are committed in PostgreSQL: hold them for the tables' write,
        after which its records are acked."""
        if not self._events:
            self._since = time.monotonic()
        self._effects.append(effects)
        self._events.extend(events)
        if self.due:
            await self.write_tables()

    @property
    def due(self) -> bool:
        """Whether the held effects should be written now."""
        if not self._events:
            return False
        # A rebalance and a stop wait for the held events' acks.
        if self._app.rebalancing or self._app.should_stop:
            return True
        return time.monotonic() - self._since >= self._interval

    async def write_tables(self) -> None:
        """Write the held effects to the tables, then ack their records as processed."""
        effects, events = self._take()
        if not events:
            return
        try:
            self._write(effects)
        except BaseException:
            await self.release(events)  # consumed again: their batches heal the tables
            raise
        self._consumer().done(event.message for event in events)
        await self._ack(events)

    async def release(self, events: Iterable[Any]) -> None:
        """Let go of a batch unprocessed: nothing of it is committed, it is consumed again."""
        # An ack of records not declared done only lets go of them (a stop or a rebalance
        # waits for it): the consumer makes nothing of them committable.
        await self._ack(events)

    async def stop(self) -> None:
        """Write what is held before the app stops (the stop waits for every ack)."""
        await self.write_tables()

    def _take(self) -> tuple[list[Effects], list[Any]]:
        taken = self._effects, self._events
        self._effects, self._events = [], []
        return taken

    async def _ack(self, events: Iterable[Any]) -> None:
        for event in events:
            await self._stream.ack(event)

    async def _write_when_due(self) -> None:
        # The stream may be idle: nothing else would write the last batches held.
        if self.due:
            await self.write_tables()

    async def _reread_stuck(self) -> None:
        try:
            await self._consumer().reread_stuck_partitions()
        except Exception:  # tried again in a second; a failed check must not stop a worker
            logger.exception("checking for partitions with stuck commits failed")

    def _consumer(self) -> Consumer:
        consumer = self._app.consumer
        if not isinstance(consumer, Consumer):
            raise TypeError(f"the app's consumer is {type(consumer)!r}, not the delivery's")
        return consumer

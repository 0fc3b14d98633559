"""The consumer's half of the delivery contract: Faust's aiokafka consumer, committing only
offsets whose records' effects were committed.

Faust's own bookkeeping can commit past records nobody processed, in five ways, each found by
the at-least-once test (`tests/e2e/test_at_least_once.py`) and each pinned by a test of its
own (`tests/stream/delivery/`):

1. its stream acks the records it *skips* (pulled while a rebalance has suspended the flow, or
   fetched before the last rebalance) "so that the lag does not grow", and the revoke that
   follows commits them. Guard: `Consumer.ack` takes an ack only for a record declared done;
2. its commit checks for a gap at the head of the acked offsets one off (`min(acked) -
   committed > 1`), and not at all while a partition has no committed offset (or offset 0).
   Guard: `Consumer._new_offset` commits only from exactly where the last commit (or the
   partition's first offset) left off;
3. a fetch that jumps past offsets it never delivered is taken for a hole in the topic (a
   compacted or transactional one has them) and the jumped offsets become committable.
   Guard: `Consumer._add_gap` records no gap (`new_applications` is written by idempotent,
   non-transactional producers and never compacted: every offset holds a record);
4. a stale delivery after the post-rebalance seek advances the fetcher's read offset, so the
   copies fetched again are dropped and the partition's commits stay stuck behind them.
   Guard: `Consumer.reread_stuck_partitions` seeks such a partition back to its commit base
   (at once after a fetch jumped over records, else once it has been stuck STUCK_SECONDS);
5. a fetch that spans a rebalance reads with the partition set the rebalance emptied in place,
   which aiokafka takes for "all partitions", and Faust drops what is not active: changelog
   records consumed and never applied (the recovery then waits for them for good). Guard:
   `ConsumerThread._fetch_records` puts back what a fetch took for unwanted partitions.

What comes again is processed again and changes nothing: processing is idempotent.

It also hands each fetched message to the streams more cheaply (`Consumer.wait_first`).
Faust's fetcher delivers every message with `await self.wait_first(deliver(message),
self.suspend_flow.wait())`, which starts four tasks per message so that a rebalance can
interrupt a delivery blocked on a full stream buffer. While the flow is not suspended, this
consumer awaits the delivery directly: that machinery took a sixth of a worker's main thread
and halved its drain rate. A rebalance does not stop the fetcher, but it clears the stream
buffers, which cancels a delivery waiting for room in one; a message delivered late is of a
past generation, which the stream skips, and which guard 1 keeps uncommitted.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Mapping, Set
from types import CoroutineType
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from faust.transport.drivers import aiokafka as driver
from faust.types import TP, Message
from faust.types.tuples import ack_lock
from mode.services import WaitResults
from mode.utils.futures import notify
from typing_extensions import override

logger = logging.getLogger(__name__)

# How long a partition's commits may stay stuck before it is read again: far longer than a
# batch takes, so records merely still in flight are never taken for lost ones. A partition a
# fetch jumped on is known to have lost records: it is read again as soon as it is stuck.
STUCK_SECONDS = 5.0

# The longest a fetch waiting for records goes without looking at the partitions it is asked
# for again (an idle worker's fetch loop wakes this often, in its consumer thread only).
RESUME_CHECK = 0.025

# How long the broker may hold a fetch that finds no new records. aiokafka has one fetch in
# flight per broker, for the partitions with no records in hand: one that had read its
# partition to the end waited Faust's 1.5 s for records that would not come, while the other
# partitions' records in hand ran out and their next fetch could not be sent (drains stood
# still for up to a second and a half, once a partition was read to its end). A new record
# still ends the wait at once.
FETCH_MAX_WAIT_MS = 100

# What a fetch returns: each partition's records, in offset order.
Records = dict[TP, list[Any]]


class Consumer(driver.Consumer):
    """Faust's aiokafka consumer whose commits cover only records declared done."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._done: set[tuple[TP, int]] = set()
        self._first_offset: dict[TP, int] = {}  # of partitions with nothing committed yet
        self._stuck_since: dict[TP, float] = {}
        self._jumped: set[TP] = set()  # partitions a fetch jumped on since their last re-read

    @override
    async def wait_first(self, *coros: Any, timeout: Any = None) -> WaitResults:
        if len(coros) == 2 and timeout is None and self._delivering(*coros):
            deliver, suspended = coros
            suspended.close()
            return WaitResults([deliver], [await deliver], False)
        return await super().wait_first(*coros, timeout=timeout)

    def _delivering(self, deliver: Any, suspended: Any) -> bool:
        """Whether this is the fetcher's delivery of one message, with the flow running."""
        # (Native coroutines: the ABC's isinstance costs more than the rest of this check.)
        if not isinstance(deliver, CoroutineType) or not isinstance(suspended, CoroutineType):
            return False
        frame = getattr(suspended, "cr_frame", None)
        waits_for_suspension = frame is not None and frame.f_locals.get("self") is self.suspend_flow
        return waits_for_suspension and not self.suspend_flow.is_set() and not self.should_stop

    @override
    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def done(self, messages: Iterable[Message]) -> None:
        """Declare the records processed: their acks may be committed from now on."""
        self._done.update((message.tp, message.offset) for message in messages)

    @override
    def ack(self, message: Message) -> bool:
        with ack_lock:
            key = (message.tp, message.offset)
            if key in self._done:
                self._done.discard(key)
                return bool(super().ack(message))
            # Skipped by the stream, not processed: let go of it without making it committable.
            if not message.acked:
                message.acked = True
                self._unacked_messages.discard(message)
                notify(self._waiting_for_ack)
            return False

    @override
    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        # Called only for acked topics, whose offsets all hold records: the jumped ones were
        # not delivered, so they must not become committable. The commits stop before them,
        # and reread_stuck_partitions reads the partition again from there.
        logger.info(
            "%s[%d]: the fetch jumped over %d..%d; not committing past them",
            *tp,
            offset_from,
            offset_to,
        )
        self._jumped.add(tp)

    @override
    def _new_offset(self, tp: TP) -> int | None:
        head = self._commit_base(tp)
        if head is None or self._first_pending(tp) != head:
            return None  # nothing, or a gap, where the last commit left off
        return super()._new_offset(tp)

    def _commit_base(self, tp: TP) -> int | None:
        """The offset the next commit of the partition must start from."""
        committed = self._committed_offset.get(tp)
        return committed if committed is not None else self._first_offset.get(tp)

    def _first_pending(self, tp: TP) -> int | None:
        """The lowest offset acked and not committed."""
        acked = self._acked.get(tp)
        return min(acked) if acked else None

    async def reread_stuck_partitions(self) -> list[TP]:
        """Seek back every partition whose commits are stuck behind records nobody holds;
        return them."""
        if self.app.rebalancing or not self.flow_active:
            # The rebalance seeks to the committed offsets itself.
            self._stuck_since.clear()
            self._jumped.clear()
            return []
        # Only the topics whose records are acked (the agents' sources): changelogs and other
        # internal topics are read by Faust's table recovery and never acked.
        acked = self.app.topics.acks_enabled_for
        assigned = {tp for tp in self.assignment() if acked(tp.topic)}
        await self._learn_first_offsets(assigned)
        now = time.monotonic()
        stuck = {tp for tp in assigned if await self._is_stuck(tp)}
        for tp in set(self._stuck_since) - stuck:
            del self._stuck_since[tp]
        self._jumped &= assigned
        again = []
        for tp in sorted(stuck):
            stuck_for = now - self._stuck_since.setdefault(tp, now)
            due = stuck_for >= STUCK_SECONDS or tp in self._jumped
            if due and await self._reread(tp):
                del self._stuck_since[tp]
                self._jumped.discard(tp)
                again.append(tp)
        return again

    async def _reread(self, tp: TP) -> bool:
        """Seek a stuck partition back to its commit base; False if it was revoked meanwhile."""
        base = self._commit_base(tp)
        if base is None:
            return False
        logger.warning("reading %s[%d] again from %d: its commits are stuck", *tp, base)
        try:
            await self.seek(tp, base)
        except KafkaError as exc:  # its next owner reads it
            logger.info("could not read %s[%d] again: %r", *tp, exc)
            return False
        return True

    async def _learn_first_offsets(self, assigned: set[TP]) -> None:
        """Where partitions without a committed offset start (the group reads from the
        earliest offset), so that their first commit can be checked for a gap too."""
        for tp in set(self._first_offset) - assigned:
            del self._first_offset[tp]
        unknown = [
            tp
            for tp in assigned
            if self._committed_offset.get(tp) is None and tp not in self._first_offset
        ]
        if unknown:
            with contextlib.suppress(KafkaError):  # tried again on the next round
                self._first_offset.update(await self.earliest_offsets(*unknown))

    async def _is_stuck(self, tp: TP) -> bool:
        """Whether records past the commit base were read but are neither held nor acked."""
        base = self._commit_base(tp)
        if base is None or self._first_pending(tp) == base:
            return False
        try:
            position = await self.position(tp)
        except KafkaError:  # revoked meanwhile (IllegalStateError), or the broker is away
            return False
        if position is None or position <= base:
            return False
        return not any(
            m.tp == tp and not m.acked and m.offset >= base for m in list(self._unacked_messages)
        )


class ConsumerThread(driver.AIOKafkaConsumerThread):
    """Faust's aiokafka consumer thread, whose fetches return only what is still wanted, and
    see partitions resumed while they wait."""

    @override
    def _create_worker_consumer(self, transport: Any) -> AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read by start(), for its fetcher
        return consumer

    @override
    async def _fetch_records(
        self,
        consumer: AIOKafkaConsumer,
        active_partitions: set[TP],
        timeout: float | None = None,
        max_records: int | None = None,
    ) -> Records:
        records = await self._fetch_in_slices(consumer, active_partitions, timeout, max_records)
        wanted = active_partitions | self.consumer._buffered_partitions
        return rewind_unwanted(consumer, dict(records), wanted)

    async def _fetch_in_slices(
        self,
        consumer: AIOKafkaConsumer,
        active_partitions: set[TP],
        wait: float | None,
        max_records: int | None,
    ) -> Mapping[TP, list[Any]]:
        """Faust's fetch, its wait cut into slices of RESUME_CHECK seconds.

        aiokafka's wait for records ends when new ones arrive or at its timeout (a second):
        records it already holds for a partition Faust resumes meanwhile (its stream buffer
        drained: Faust adds it to this same set) do not end it. So a worker draining a
        backlog stood idle for up to a second with records in hand each time its buffer
        had filled, for a third of the drain. Each slice asks again, for the set as it is.
        """
        if not wait:
            return await super()._fetch_records(consumer, active_partitions, wait, max_records)
        deadline = time.monotonic() + wait
        while True:
            left = deadline - time.monotonic()
            records = await super()._fetch_records(
                consumer,
                active_partitions,
                timeout=max(min(RESUME_CHECK, left), 0.0),
                max_records=max_records,
            )
            # (Without flow Faust's fetch returns at once: nothing to wait for then.)
            if records or left <= RESUME_CHECK or not self.consumer.flow_active:
                return records


def rewind_unwanted(consumer: AIOKafkaConsumer, records: Records, wanted: Set[TP]) -> Records:
    """Keep the records of the wanted partitions; seek every other one back to its first
    record returned, so that it is read again once it is wanted."""
    unwanted = [tp for tp in records if tp not in wanted]
    for tp in unwanted:
        first = records.pop(tp)[0].offset
        if tp in consumer.assignment():
            consumer.seek(tp, first)
    if unwanted:
        logger.debug("put back a fetch of %d unwanted partitions: %s", len(unwanted), unwanted)
    return records

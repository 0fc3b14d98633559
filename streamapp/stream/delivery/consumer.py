"""The Kafka transport: Faust's aiokafka driver with an idempotent producer, and a consumer
that commits only offsets whose records' effects were committed.

The producer sends with acks=all and idempotence on (Faust turns both on only for
transactions): with `min.insync.replicas=2` on a 3-broker cluster an acknowledged record is on
two brokers, and a retried send is never written twice.

About the consumer:

Faust's own bookkeeping can commit past records nobody processed, in three ways found by the
at-least-once tests (`tests/e2e/test_at_least_once.py`):

- its stream acks the records it *skips* (pulled while a rebalance has suspended the flow, or
  fetched before the last rebalance) "so that the lag does not grow", and the revoke that
  follows commits them;
- its commit checks for a gap at the head of the acked offsets one off (`min(acked) -
  committed > 1`), and not at all while a partition has no committed offset (or offset 0);
- a stale delivery after the post-rebalance seek advances the fetcher's read offset, so the
  copies fetched again are dropped and the partition's commits stay stuck behind them;
- a fetch that jumps past offsets it never delivered is taken for a hole in the topic (a
  compacted or transactional one has them) and the jumped offsets become committable: lost.

So this consumer takes an ack only for a record the agent declared `done()` (its effects are
committed), treats no jump as a hole (`new_applications` is written by idempotent,
non-transactional producers and never compacted: every offset holds a record), commits a
partition only from exactly where its last commit (or its first offset) left off, and
`fetch_gaps_again()`, run every second, seeks a partition back to that
point when its commits have been stuck for a while behind records nobody holds. What comes
again is processed again and changes nothing: processing is idempotent.

It also hands each fetched message to the streams more cheaply. Faust's fetcher delivers
every message with `await self.wait_first(deliver(message), self.suspend_flow.wait())`,
which starts four tasks per message so that a rebalance can interrupt a delivery blocked on a
full stream buffer. While the flow is not suspended, this consumer awaits the delivery
directly: that machinery took a sixth of a worker's main thread and halved its drain rate. A
rebalance does not stop the fetcher, but it clears the stream buffers, which cancels a delivery
waiting for room in one; a message delivered late is of a past generation, which the stream
skips, and which the ack filter above keeps uncommitted.

And it gives back what a fetch took for partitions it no longer reads. Faust's fetcher asks
aiokafka for the records of its active partitions, a set it changes in place while the fetch
waits (up to a second, and across a whole rebalance). The recovery pauses every partition and
seeks the changelogs to where their tables start; a fetch that spans that moment reads them
with an empty set, which aiokafka takes for "all partitions", and Faust drops what is not
active: those changelog records were consumed and never applied, and the recovery waited for
them for good ("No event received for active tp ... since recovery start"). So such records
are put back (`rewind_unwanted`): each partition is sought back to the first one returned.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Coroutine, Iterable, Mapping, Set
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from faust.transport.drivers import aiokafka as driver
from faust.types import TP, Message
from faust.types.tuples import ack_lock
from mode.services import WaitResults
from mode.utils.futures import notify

from streamapp.config import get_settings

logger = logging.getLogger(__name__)

# How long a partition's commits may stay stuck before it is read again: far longer than a
# batch takes, so records merely still in flight are never taken for lost ones.
STUCK_SECONDS = 5.0

# What a fetch returns: each partition's records, in offset order.
Records = dict[TP, list[Any]]


class Consumer(driver.Consumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._done: set[tuple[TP, int]] = set()
        self._first_offset: dict[TP, int] = {}  # of partitions with nothing committed yet
        self._stuck_since: dict[TP, float] = {}

    async def wait_first(self, *coros: Any, timeout: Any = None) -> WaitResults:  # noqa: ASYNC109 (the overridden signature)
        if len(coros) == 2 and timeout is None and self._delivering(*coros):
            deliver, suspended = coros
            suspended.close()
            return WaitResults([deliver], [await deliver], False)
        return await super().wait_first(*coros, timeout=timeout)

    def _delivering(self, deliver: Any, suspended: Any) -> bool:
        """Whether this is the fetcher's delivery of one message, with the flow running."""
        if not isinstance(deliver, Coroutine) or not isinstance(suspended, Coroutine):
            return False
        frame = getattr(suspended, "cr_frame", None)
        waits_for_suspension = frame is not None and frame.f_locals.get("self") is self.suspend_flow
        return waits_for_suspension and not self.suspend_flow.is_set() and not self.should_stop

    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def done(self, messages: Iterable[Message]) -> None:
        """Declare the records processed: their acks may be committed from now on."""
        self._done.update((message.tp, message.offset) for message in messages)

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

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        # Called only for acked topics, whose offsets all hold records: the jumped ones were
        # not delivered, so they must not become committable. The commits stop before them,
        # and fetch_gaps_again reads the partition again from there.
        logger.info(
            "%s[%d]: the fetch jumped over %d..%d; not committing past them",
            *tp,
            offset_from,
            offset_to,
        )

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

    async def fetch_gaps_again(self) -> list[TP]:
        """Seek back every partition stuck behind records nobody holds; return them."""
        if self.app.rebalancing or not self.flow_active:
            self._stuck_since.clear()  # the rebalance seeks to the committed offsets itself
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
        again = []
        for tp in sorted(stuck):
            if now - self._stuck_since.setdefault(tp, now) >= STUCK_SECONDS:
                base = self._commit_base(tp)
                if base is None:  # revoked meanwhile
                    continue
                logger.warning("reading %s[%d] again from %d: records were skipped", *tp, base)
                try:
                    await self.seek(tp, base)
                except KafkaError as exc:  # revoked meanwhile: its next owner reads it
                    logger.info("could not read %s[%d] again: %r", *tp, exc)
                    continue
                del self._stuck_since[tp]
                again.append(tp)
        return again

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
    """Faust's aiokafka consumer thread, whose fetches return only what is still wanted."""

    async def _fetch_records(
        self,
        consumer: AIOKafkaConsumer,
        active_partitions: set[TP],
        timeout: float | None = None,  # noqa: ASYNC109 (the overridden signature)
        max_records: int | None = None,
    ) -> Records:
        records = await super()._fetch_records(
            consumer, active_partitions, timeout=timeout, max_records=max_records
        )
        wanted = active_partitions | self.consumer._buffered_partitions
        return rewind_unwanted(consumer, dict(records), wanted)


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


class Producer(driver.Producer):
    def _settings_extra(self) -> Mapping[str, Any]:
        # PRODUCER_IDEMPOTENCE=false for brokers without it (the embedded dev broker).
        idempotent = get_settings().producer_idempotence
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": idempotent}


class Transport(driver.Transport):
    Consumer = Consumer
    Producer = Producer

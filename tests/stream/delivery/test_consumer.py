"""Each way Faust's consumer could commit records nobody processed, pinned on its own with the
real consumer (no broker): acks, the commit base, gaps, stuck partitions, and the delivery of
a message to the streams."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streamapp.stream.delivery import consumer as consumer_module
from tests.stream.delivery.conftest import PARTITION, Feed


def ack_done(feed: Feed, offsets: list[int]) -> None:
    """Ack records declared done, as the delivery does after their tables' write."""
    messages = [feed.message(offset) for offset in offsets]
    for message in messages:
        feed.consumer.track_message(message)
    feed.consumer.done(messages)
    for message in messages:
        assert feed.consumer.ack(message)


async def test_records_the_stream_skips_never_become_committable(feed: Feed) -> None:
    """Faust's stream skips records of a past generation (as after a rebalance) without
    tracking them: they must never become committable, so they are read again."""
    await feed.put(range(3), generation=feed.app.consumer_generation_id - 1)
    await feed.put([3])  # one current record, so the stream hands something over
    event = await asyncio.wait_for(anext(aiter(feed.stream)), 5)

    assert event == b"value-3"
    assert feed.committable() is None
    assert not feed.consumer._acked.get(PARTITION)


async def test_an_ack_counts_only_for_a_record_declared_done(feed: Feed) -> None:
    """Guard 1: an ack of a record not declared done (a released batch) commits nothing."""
    released, processed = feed.message(0), feed.message(1)
    for message in (released, processed):
        feed.consumer.track_message(message)

    assert not feed.consumer.ack(released)
    assert released.acked
    assert feed.committable() is None

    feed.consumer.done([processed])
    assert feed.consumer.ack(processed)
    assert feed.consumer._acked[PARTITION] == [1]
    assert feed.committable() is None  # offset 0 was released, not processed: a gap


def test_a_commit_starts_exactly_where_the_last_one_left_off(feed: Feed) -> None:
    """Guard 2: Faust's check for a gap at the head is one off; with offset 10 committed and
    11 and 12 acked it would commit 13, past the unprocessed record at 10."""
    feed.consumer._committed_offset[PARTITION] = 10
    ack_done(feed, [11, 12])
    assert feed.committable() is None

    ack_done(feed, [10])
    assert feed.committable() == 13


def test_a_first_commit_starts_at_the_partitions_first_offset(feed: Feed) -> None:
    """Guard 2: with nothing committed yet Faust checks for no gap at all."""
    del feed.consumer._committed_offset[PARTITION]
    feed.consumer._first_offset[PARTITION] = 5
    ack_done(feed, [6, 7])
    assert feed.committable() is None

    ack_done(feed, [5])
    assert feed.committable() == 8


async def test_offsets_a_fetch_jumped_over_never_become_committable(feed: Feed) -> None:
    """Guard 3: Faust records the offsets a fetch jumps over as a hole in the topic and
    commits past them; here they were never delivered, so the commit stops before them."""
    await feed.consumer._add_gap(PARTITION, 3, 5)
    ack_done(feed, [0, 1, 2, 5])
    assert feed.committable() == 3


class Broker:
    """What the stuck-partition check asks the broker, answered for one partition."""

    def __init__(self, position: int) -> None:
        self.position = position
        self.sought: list[tuple[Any, int]] = []

    async def ask_position(self, tp: Any) -> int:
        return self.position

    async def seek(self, tp: Any, offset: int) -> None:
        self.sought.append((tp, offset))


@pytest.fixture
def broker(feed: Feed, monkeypatch: pytest.MonkeyPatch) -> Broker:
    broker = Broker(position=15)
    monkeypatch.setattr(consumer_module, "STUCK_SECONDS", 0.0)
    monkeypatch.setattr(feed.consumer, "assignment", lambda: {PARTITION})
    monkeypatch.setattr(feed.consumer, "position", broker.ask_position)
    monkeypatch.setattr(feed.consumer, "seek", broker.seek)
    feed.consumer._committed_offset[PARTITION] = 10
    return broker


async def test_a_partition_stuck_behind_records_nobody_holds_is_read_again(
    feed: Feed, broker: Broker
) -> None:
    """Guard 4: read up to 15, 12 acked, 10 and 11 held by nobody (dropped after a seek):
    the partition is read again from its commit base."""
    ack_done(feed, [12])
    assert await feed.consumer.reread_stuck_partitions() == [PARTITION]
    assert broker.sought == [(PARTITION, 10)]


async def test_a_partition_whose_records_are_still_in_hand_is_left_alone(
    feed: Feed, broker: Broker
) -> None:
    ack_done(feed, [12])
    held = feed.message(10)  # still being processed (the consumer keeps a weak reference)
    feed.consumer.track_message(held)
    assert await feed.consumer.reread_stuck_partitions() == []
    ack_done(feed, [10, 11])  # nothing stuck: commits can go on
    assert await feed.consumer.reread_stuck_partitions() == []
    assert broker.sought == []


async def test_a_partition_a_fetch_jumped_on_is_read_again_at_once(
    feed: Feed, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stuck partitions wait STUCK_SECONDS, in case their records are merely in flight; after
    a jump the records are known to be lost, so the partition is read again at the first
    check (a drain stalled for the whole wait before)."""
    monkeypatch.setattr(consumer_module, "STUCK_SECONDS", 3600.0)
    ack_done(feed, [12])
    assert await feed.consumer.reread_stuck_partitions() == []  # stuck, not for long yet

    await feed.consumer._add_gap(PARTITION, 10, 11)
    assert await feed.consumer.reread_stuck_partitions() == [PARTITION]
    assert broker.sought == [(PARTITION, 10)]
    assert await feed.consumer.reread_stuck_partitions() == []  # the jump was seen to


async def test_a_rebalance_reads_again_by_itself(feed: Feed, broker: Broker) -> None:
    ack_done(feed, [12])
    feed.consumer.flow_active = False
    assert await feed.consumer.reread_stuck_partitions() == []
    assert broker.sought == []


async def test_a_delivery_while_the_flow_runs_is_awaited_directly(feed: Feed) -> None:
    """Delivering a message starts no task while the flow runs (Faust starts four)."""
    started: list[asyncio.Task[Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_task_factory(lambda loop, coro, **kw: record(started, asyncio.Task(coro, **kw)))
    try:
        done = await feed.consumer.wait_first(delivered(), feed.consumer.suspend_flow.wait())
    finally:
        loop.set_task_factory(None)
    assert done.results == ["delivered"]
    assert started == []


async def test_a_delivery_during_a_suspension_waits_as_faust_does(feed: Feed) -> None:
    feed.consumer.suspend_flow.set()
    done = await feed.consumer.wait_first(blocked(), feed.consumer.suspend_flow.wait())
    assert done.stopped is False
    assert done.results == [True]  # the suspension won; the delivery was given up


def record(started: list[asyncio.Task[Any]], task: asyncio.Task[Any]) -> asyncio.Task[Any]:
    started.append(task)
    return task


async def delivered() -> str:
    return "delivered"


async def blocked() -> None:
    await asyncio.Event().wait()

"""The ack protocol: a batch's records become committable only once its effects are written
to the tables; a failed write, a cancelled batch and a rebalance each leave nothing committed
that was not written."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest

from streamapp.stream.delivery import Delivery
from tests.stream.delivery.conftest import Feed

TIMEOUT = 5.0


class Tables:
    """The effects written, in order; fails the next write when told to."""

    def __init__(self) -> None:
        self.written: list[str] = []
        self.fail_next = False

    def write(self, effects: Sequence[str]) -> None:
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("the changelog is not writable")
        self.written.extend(effects)


@pytest.fixture
def tables() -> Tables:
    return Tables()


@pytest.fixture
def delivery(feed: Feed, tables: Tables) -> Delivery[str]:
    # An interval no test reaches: a write happens only when a test makes it due.
    return Delivery(feed.app, tables.write, write_interval=3600)  # type: ignore[arg-type]


async def take_one(
    delivery: Delivery[str], feed: Feed, size: int, then: Callable[[list], Awaitable[None]]
) -> None:
    """Take one batch of `size` records and run `then` on it, as the agent does."""
    async with delivery.take(feed.stream, size=size, wait=0.01) as taken:
        await then(await asyncio.wait_for(anext(taken), TIMEOUT))


async def test_a_batch_is_acked_only_after_its_tables_write(
    feed: Feed, delivery: Delivery[str], tables: Tables
) -> None:
    messages = await feed.put(range(3))
    async with delivery.take(feed.stream, size=3, wait=0.01) as taken:
        batch = await asyncio.wait_for(anext(taken), TIMEOUT)
        await delivery.done(batch, "counts of 0..2")

        assert not any(message.acked for message in messages)  # committed in PostgreSQL only
        assert feed.committable() is None
        assert delivery.due is False

        await delivery.write_tables()

    assert tables.written == ["counts of 0..2"]
    assert all(message.acked for message in messages)
    assert feed.committable() == 3


async def test_a_failed_tables_write_commits_nothing(
    feed: Feed, delivery: Delivery[str], tables: Tables
) -> None:
    messages = await feed.put(range(3))
    tables.fail_next = True

    async def done_and_written(batch: list) -> None:
        await delivery.done(batch, "counts of 0..2")
        await delivery.write_tables()

    with pytest.raises(RuntimeError, match="not writable"):
        await take_one(delivery, feed, 3, done_and_written)

    assert tables.written == []
    assert all(message.acked for message in messages)  # let go of: a stop would wait for them
    assert feed.committable() is None  # and consumed again


async def test_a_batch_given_up_midway_commits_nothing(
    feed: Feed, delivery: Delivery[str], tables: Tables
) -> None:
    messages = await feed.put(range(3))

    async def done_then_cancelled(batch: list) -> None:
        await delivery.done(batch, "counts of 0..2")
        raise asyncio.CancelledError  # as when the worker's agent is cancelled

    with pytest.raises(asyncio.CancelledError):
        await take_one(delivery, feed, 3, done_then_cancelled)

    assert tables.written == []
    assert all(message.acked for message in messages)
    assert feed.committable() is None


def assert_written_and_committable(feed: Feed, tables: Tables, messages: list[Any]) -> None:
    """The batch of offsets 0 and 1 was written, then acked: committable up to 2."""
    assert tables.written == ["counts of 0..1"]
    assert all(message.acked for message in messages)
    assert feed.committable() == 2


async def test_a_rebalance_makes_held_batches_due_at_once(
    feed: Feed, delivery: Delivery[str], tables: Tables
) -> None:
    messages = await feed.put(range(2))
    async with delivery.take(feed.stream, size=2, wait=0.01) as taken:
        batch = await asyncio.wait_for(anext(taken), TIMEOUT)
        feed.app.rebalancing = True  # the rebalance waits for every record in hand
        await delivery.done(batch, "counts of 0..1")

        assert_written_and_committable(feed, tables, messages)


async def test_the_stop_writes_what_is_held(
    feed: Feed, delivery: Delivery[str], tables: Tables
) -> None:
    messages = await feed.put(range(2))
    async with delivery.take(feed.stream, size=2, wait=0.01) as taken:
        batch = await asyncio.wait_for(anext(taken), TIMEOUT)
        await delivery.done(batch, "counts of 0..1")
        for hook in feed.app.before_stop:  # what StreamApp.on_stop runs first
            await hook()

        assert_written_and_committable(feed, tables, messages)


async def test_a_released_batch_is_let_go_of_uncommitted(
    feed: Feed, delivery: Delivery[str], tables: Tables
) -> None:
    messages = await feed.put(range(2))
    async with delivery.take(feed.stream, size=2, wait=0.01) as taken:
        batch = await asyncio.wait_for(anext(taken), TIMEOUT)
        await delivery.release(batch)  # e.g. the database is away: it comes again

    assert tables.written == []
    assert all(message.acked for message in messages)
    assert feed.committable() is None

"""The batches generator over a real Faust stream fed by hand: full batches from a backlog,
a lone record handed over after its wait, and records gathered at a stop let go of
uncommitted."""

from __future__ import annotations

import asyncio
import contextlib

from streamapp.stream.delivery.batches import batches
from tests.stream.delivery.conftest import Feed

TIMEOUT = 5.0


def offsets(batch: list) -> list[int]:
    return [event.message.offset for event in batch]


async def test_a_backlog_is_handed_over_in_full_batches(feed: Feed) -> None:
    messages = await feed.put(range(10))
    stream = feed.stream.noack()
    taken: list[list[int]] = []
    async with contextlib.aclosing(batches(stream, size=3, wait=0.05)) as batched:
        async for batch in batched:
            taken.append(offsets(batch))
            if sum(map(len, taken)) == len(messages):
                break
    assert taken == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]


async def test_a_lone_record_is_handed_over_without_waiting_for_a_full_batch(feed: Feed) -> None:
    stream = feed.stream.noack()
    async with contextlib.aclosing(batches(stream, size=100, wait=0.01)) as batched:
        first = asyncio.ensure_future(anext(batched))
        kept = await feed.put([0])
        batch = await asyncio.wait_for(first, TIMEOUT)
    assert offsets(batch) == [0]
    assert not kept[0].acked  # handed over unacked: the delivery acks it


async def test_records_gathered_when_the_batches_stop_are_let_go_of_uncommitted(
    feed: Feed,
) -> None:
    messages = await feed.put(range(5))
    stream = feed.stream.noack()
    batched = batches(stream, size=3, wait=0.01)
    first = await asyncio.wait_for(anext(batched), TIMEOUT)
    await wait_until(lambda: stream.events_total == len(messages))  # 3 and 4 gathered
    await batched.aclose()

    assert offsets(first) == [0, 1, 2]
    rest = messages[3:]
    assert all(message.acked for message in rest)  # a stop waits for nothing of theirs
    assert not any(message in feed.consumer._unacked_messages for message in rest)
    assert feed.committable() is None  # and none of them is committable


async def wait_until(condition: object, timeout: float = TIMEOUT) -> None:
    """Let the stream run until `condition()` holds."""
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.001)

"""Batches of events from a Faust stream, flushed as soon as the stream goes idle.

Faust's `take` waits out its whole window unless the batch fills, which puts the window on
every record's latency when the stream is quiet. Here a batch ends when it is full, or when
no further event has arrived for `idle` seconds: a lone event waits that long at most, while
a stream that keeps delivering fills its batches (and pays one database round trip and one
table update per user for a whole batch).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

# How often an idle batch looks for a new event: well below `idle`, so it adds little latency.
POLL_SECONDS = 0.001


async def batches(stream: Any, *, size: int, idle: float) -> AsyncIterator[list[Any]]:
    """Yield lists of at most `size` events from a stream that does not ack by itself.

    The caller acks each event once the batch's effects are committed; an event of a batch
    that was never finished stays unacked, so its offset is never committed.
    """
    waiting = stream.channel.queue
    batch: list[Any] = []
    async for _ in stream:  # what `stream.events()` does, without its generator per event
        batch.append(stream.current_event)
        if len(batch) < size and (not waiting.empty() or await _another_arrives(waiting, idle)):
            continue
        yield batch
        batch = []


async def _another_arrives(queue: asyncio.Queue[Any], idle: float) -> bool:
    """Wait up to `idle` seconds for the stream's buffer to hold an event again."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + idle
    while queue.empty():
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(POLL_SECONDS)
    return True

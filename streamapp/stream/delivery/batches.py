"""Batches of events from a Faust stream that does not ack by itself, filled while the
previous batch is being processed.

Faust's `noack_take` stops filling while its caller holds a batch, and its window restarts
after each one: with a short window a backlog is drained in batches of about a hundred, each
paying a database round trip, and with a long one every record waits it out. Here the
stream's events are gathered in the background (Faust's passive drainer, as `take` does)
into the next batch while the caller works on the current one. A batch is handed over when
it is full; or once `wait` seconds passed since its first event and the stream has nothing
more waiting in its buffer; or after HOLD_MAX seconds in any case. So a lone event waits
`wait` at most, and a backlog is processed in full batches (handing over batches of what
happened to arrive within `wait` lets each batch's fixed cost, a statement and a changelog
write per user, take the CPU the stream needs to fill the next: the batches shrink to a few
dozen events and the drain slows to a third).

Nothing here ever waits for a next event while holding a batch: a rebalance first waits for
every event delivered to be acked, and it suspends the stream, so that wait would never end.
Events still gathered when the stream stops are released unprocessed (acked without being
declared done, so never committed) and come again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

# The longest a batch is held while the stream still has events waiting for it.
HOLD_MAX = 0.25
# How often a held batch looks at the stream's buffer again.
POLL = 0.001


async def batches(stream: Any, *, size: int, wait: float) -> AsyncGenerator[list[Any], None]:
    """Yield lists of at most `size` events of `stream` (a `stream.noack()`)."""
    gathered: list[Any] = []
    first_at = 0.0
    arrived = asyncio.Event()  # an event was gathered
    full = asyncio.Event()  # the batch has `size` events
    room = asyncio.Event()  # the gatherer may add again
    room.set()
    loop = asyncio.get_running_loop()
    waiting = stream.channel.queue  # the stream's buffer, ahead of the gatherer

    def gather(value: Any) -> Any:
        # Called for every event: synchronous (Faust awaits a processor's result only if it is
        # awaitable) unless the batch is full and the event must wait for room.
        if len(gathered) >= size and not stream.should_stop:
            return add_with_room(value)
        add(stream.current_event)
        return value

    def add(event: Any) -> None:
        nonlocal first_at
        if not gathered:
            first_at = loop.time()
        gathered.append(event)
        arrived.set()
        if len(gathered) >= size:
            full.set()

    async def add_with_room(value: Any) -> Any:
        event = stream.current_event
        while len(gathered) >= size and not stream.should_stop:
            room.clear()  # back-pressure: the caller takes the batch first
            await stream.wait(room)
        add(event)
        return value

    stream.add_processor(gather)
    stream._enable_passive(aiter(stream.channel))
    try:
        while not stream.should_stop:
            # (A wait that times out reads as stopped in mode: the loop checks for itself.)
            if not gathered:
                arrived.clear()
                await stream.wait(arrived)
                continue
            held = loop.time() - first_at
            if len(gathered) < size and held < HOLD_MAX:
                if held < wait:
                    await stream.wait(full, timeout=wait - held)
                    continue
                if not waiting.empty():
                    await stream.wait(full, timeout=POLL)
                    continue
            batch = list(gathered)
            gathered.clear()
            full.clear()
            room.set()
            yield batch
    finally:
        stream._processors.remove(gather)
        for event in gathered:  # gathered, never handed over: let go of them uncommitted
            await stream.ack(event)
        gathered.clear()
        room.set()

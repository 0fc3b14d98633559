"""A Faust app with the delivery's transport, fed records by hand: no broker, nothing started.

The feed puts messages into a stream's channel as the consumer's fetcher does (tracked as
unacked, one reference each, of the current generation), so the real Faust stream, the real
consumer and the delivery's code act on them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import faust
import pytest
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from streamapp.stream.delivery import Transport
from streamapp.stream.delivery.consumer import Consumer

TOPIC = "feed"
PARTITION = TP(TOPIC, 0)


class FeedApp(faust.App):
    """What the delivery needs of the worker's StreamApp, without its settings."""

    def __init__(self, broker: str = "kafka://127.0.0.1:9") -> None:
        super().__init__("delivery-feed", broker=broker, store="memory://")
        self.before_stop: list[Callable[[], Awaitable[None]]] = []

    def _new_transport(self) -> Transport:
        return Transport(self.conf.broker_consumer, self)


@dataclass
class Feed:
    """An app, its consumer, and a stream (acking, as an agent's) whose records are put in
    by hand."""

    app: FeedApp
    consumer: Consumer
    channel: Any
    stream: Any

    def message(self, offset: int, *, generation: int | None = None) -> ConsumerMessage:
        current = self.app.consumer_generation_id
        return ConsumerMessage(
            TOPIC,
            PARTITION.partition,
            offset,
            0.0,
            0,
            [],
            b"key",
            f"value-{offset}".encode(),
            None,
            generation_id=current if generation is None else generation,
        )

    async def put(
        self, offsets: Iterable[int], *, generation: int | None = None
    ) -> list[ConsumerMessage]:
        """Deliver records to the stream as the fetcher does; the messages, which the caller
        must keep to look at (the consumer holds them by weak reference only)."""
        messages = []
        for offset in offsets:
            message = self.message(offset, generation=generation)
            self.consumer.track_message(message)
            message.incref()
            event = self.app.create_event(message.key, message.value, message.headers, message)
            await self.channel.put(event)
            messages.append(message)
        return messages

    def committable(self) -> int | None:
        """The offset a commit of the partition would store now."""
        return self.consumer._new_offset(PARTITION)


@pytest.fixture
async def feed() -> AsyncIterator[Feed]:
    app = FeedApp()
    app.topics.acking_topics.add(TOPIC)
    app.flow_control.resume()  # as after a rebalance: the channels take records
    consumer = app.consumer
    assert isinstance(consumer, Consumer)
    consumer._committed_offset[PARTITION] = 0
    channel = app.channel()
    stream = app.stream(channel)
    yield Feed(app, consumer, channel, stream)
    await stream.stop()

"""The API process's Faust producer: the Faust app run on the API's loop as a producer only.

It starts in the background: the app's first start waits for the broker (see `StreamApp`),
and until it is up sends fail fast, so applications wait in the outbox instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable

from faust.contrib.asgi import faust_app_running

from streamapp.stream.app import app as faust_app

logger = logging.getLogger(__name__)


class BrokerUnavailable(ConnectionError):
    """The producer is not connected yet; the event stays in the outbox."""


class ProducerRunner:
    """Runs the Faust app as a producer only, for as long as the API runs."""

    def __init__(self) -> None:
        self._ready = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    async def start(self) -> None:
        """Start connecting in the background; sends fail fast until connected."""
        faust_app.producer_only = True
        faust_app.conf.web_enabled = False  # Faust's web server runs on the workers only
        self._task = asyncio.create_task(self._run(), name="faust-producer")

    async def stop(self) -> None:
        """Stop the Faust app (flushing its producer), or stop waiting for the broker."""
        if self._task is None:
            return
        if self.ready:
            self._stopping.set()
        else:
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def send(
        self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
    ) -> Awaitable[object]:
        """Send one serialized record; the returned future resolves on the broker's ack.

        The record is bytes already, so it goes straight to the Faust app's producer rather
        than through a topic channel and its serializers.
        """
        if not self.ready:
            raise BrokerUnavailable("the Kafka producer is not connected yet")
        return await faust_app.producer.send(
            topic, key, value, partition=None, timestamp=None, headers=headers or None
        )

    async def _run(self) -> None:
        async with faust_app_running(faust_app, discover=False):
            self._ready.set()
            brokers = ", ".join(str(url) for url in faust_app.conf.broker)
            logger.info("Kafka producer connected to %s", brokers)
            await self._stopping.wait()
        self._ready.clear()

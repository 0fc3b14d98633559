"""The API process's Faust producer: started on the running loop once the broker answers.

Starting Faust fails outright while the broker is down, and the API must keep taking
applications then (they wait in the outbox). So the app is started in the background, after
the topic check succeeds, and sends fail fast until it is up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from faust.contrib.asgi import faust_app_running

from streamapp.app import app as faust_app
from streamapp.app import new_applications
from streamapp.config import Settings
from streamapp.models.records import NEW_APPLICATIONS_TOPIC, application_from_event
from streamapp.topics import ensure_topic

logger = logging.getLogger(__name__)


class BrokerUnavailable(ConnectionError):
    """The producer is not connected yet; the event stays in the outbox."""


class ProducerRunner:
    """Runs the Faust app as a producer only, for as long as the API runs."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
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
        """Stop the Faust app (flushing its producer) or give up waiting for the broker."""
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def send(self, key: str, event: dict[str, Any]) -> Any:
        """Send one outbox event; the returned future resolves on the broker's ack."""
        if not self.ready:
            raise BrokerUnavailable("the Kafka producer is not connected yet")
        record = application_from_event(event)
        return await new_applications.send(key=key.encode(), value=record.dumps())

    async def _run(self) -> None:
        if not await self._wait_for_broker():
            return
        async with faust_app_running(faust_app, discover=False):
            self._ready.set()
            logger.info("Kafka producer connected to %s", self._settings.kafka_bootstrap_servers)
            await self._stopping.wait()
        self._ready.clear()

    async def _wait_for_broker(self) -> bool:
        """Check (and if needed create) the topic until the broker answers; False if stopping."""
        delay = 0.5
        while not self._stopping.is_set():
            try:
                await ensure_topic(
                    self._settings.kafka_bootstrap_servers,
                    NEW_APPLICATIONS_TOPIC,
                    partitions=self._settings.topic_partitions,
                    replication_factor=self._settings.topic_replication_factor,
                )
                return True
            except Exception as exc:
                logger.warning("Kafka not reachable yet (%s); retrying in %.1fs", exc, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            delay = min(delay * 2, self._settings.outbox_max_backoff)
        return False

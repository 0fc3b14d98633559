"""The workers' consumer lag, measured from outside the group (for the API's dashboard).

Lag is what the group has still to commit: each partition's end offset minus the group's
committed offset (or minus the partition's first offset while nothing is committed yet).
"""

from __future__ import annotations

import contextlib
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from streamapp.connections import KafkaConnection

logger = logging.getLogger(__name__)

MEASURE_ERRORS = (KafkaError, OSError, TimeoutError)


class GroupLag:
    """Measures a group's lag on one topic; its clients are opened on first use and kept."""

    def __init__(self, kafka: KafkaConnection | str, group_id: str, topic: str) -> None:
        self._kafka = KafkaConnection.of(kafka)
        self._group_id = group_id
        self._topic = topic
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def measure(self) -> dict[int, int] | None:
        """Lag per partition, or None while the broker cannot tell (the clients start over)."""
        try:
            return await self._measure()
        except MEASURE_ERRORS as exc:
            logger.debug("consumer lag not measured: %r", exc)
            await self.close()
            return None

    async def _measure(self) -> dict[int, int]:
        admin, consumer = await self._clients()
        partitions = consumer.partitions_for_topic(self._topic)
        if not partitions:
            await consumer.topics()  # refreshes the metadata; known on the next measure
            return {}
        tps = [TopicPartition(self._topic, p) for p in sorted(partitions)]
        committed = await admin.list_consumer_group_offsets(self._group_id, partitions=tps)
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        lag = {}
        for tp in tps:
            done = committed.get(tp)
            base = done.offset if done is not None and done.offset >= 0 else starts[tp]
            lag[tp.partition] = max(ends[tp] - base, 0)
        return lag

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._admin is None or self._consumer is None:
            admin = AIOKafkaAdminClient(**self._kafka.client_options())
            consumer = AIOKafkaConsumer(**self._kafka.client_options(), enable_auto_commit=False)
            try:
                await admin.start()
                await consumer.start()
            except BaseException:
                with contextlib.suppress(*MEASURE_ERRORS):
                    await admin.close()
                    await consumer.stop()
                raise
            self._admin, self._consumer = admin, consumer
        return self._admin, self._consumer

    async def close(self) -> None:
        admin, consumer = self._admin, self._consumer
        self._admin = self._consumer = None
        with contextlib.suppress(*MEASURE_ERRORS):
            if consumer is not None:
                await consumer.stop()
        with contextlib.suppress(*MEASURE_ERRORS):
            if admin is not None:
                await admin.close()

"""The Kafka transport: Faust's aiokafka driver with an idempotent producer and the consumer
of `consumer.py`.

The producer sends with acks=all and idempotence on (Faust turns both on only for
transactions): with `min.insync.replicas=2` on a 3-broker cluster an acknowledged record is on
two brokers, and a retried send is never written twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiokafka.errors import UnknownError
from faust.transport.drivers import aiokafka as driver
from faust.types import TP
from faust.web.exceptions import ServiceUnavailable
from typing_extensions import override

from streamapp.config import get_settings
from streamapp.refusals import CannotConnect, refuse_to_start
from streamapp.stream.delivery.consumer import Consumer


class Producer(driver.Producer):
    """Faust's aiokafka producer, acked by every in-sync replica and idempotent."""

    @override
    def _settings_extra(self) -> Mapping[str, Any]:
        # PRODUCER_IDEMPOTENCE=false for brokers without it (the embedded dev broker).
        idempotent = get_settings().producer_idempotence
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": idempotent}

    @override
    async def on_start(self) -> None:
        try:
            await super().on_start()
        except UnknownError:
            # InitProducerId fails this way on a broker without idempotent producers.
            if not get_settings().producer_idempotence:
                raise
            refusal = CannotConnect(
                "Kafka could not start an idempotent producer (InitProducerId: UnknownError): "
                "a broker without them, such as the embedded tansu broker, needs "
                "PRODUCER_IDEMPOTENCE=false"
            )
            refuse_to_start(refusal, own_process=not self.transport.app.producer_only)

    @override
    def key_partition(self, topic: str, key: bytes) -> TP:
        """The partition of `key`, for table_route: 503 while the topic's partitions are not
        known yet. A worker's producer learns a changelog topic's metadata only once it sends
        to it, and Faust then fails the routed request with a TypeError (a 500)."""
        client = self._ensure_producer().client
        if client.cluster.partitions_for_topic(topic) is None:
            client.add_topic(topic)  # its metadata is fetched in the background
            raise ServiceUnavailable(f"the partitions of {topic} are not known yet")
        return super().key_partition(topic, key)


class Transport(driver.Transport):
    """Faust's aiokafka transport with this package's consumer and producer."""

    Consumer = Consumer
    Producer = Producer

"""Kafka topic checks: the original consumer's "does new_applications exist?", kept and extended."""

from __future__ import annotations

import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

logger = logging.getLogger(__name__)


async def ensure_topic(
    bootstrap_servers: str,
    name: str,
    *,
    partitions: int,
    replication_factor: int,
    expected: bool = True,
) -> int:
    """Create `name` if missing; warn if missing or smaller than configured; return its size."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = await _partition_count(admin, name)
        if existing is None:
            logger.log(
                logging.WARNING if expected else logging.INFO,
                "topic %r does not exist; creating it with %d partitions", name, partitions,
            )  # fmt: skip
            topic = NewTopic(name, num_partitions=partitions, replication_factor=replication_factor)
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker was first
                await admin.create_topics([topic])
            return await _partition_count(admin, name) or partitions
        if existing < partitions:
            logger.warning(
                "topic %r has %d partitions, fewer than the %d configured: at most %d workers "
                "will get work",
                name, existing, partitions, existing,
            )  # fmt: skip
        else:
            logger.info("topic %r exists with %d partitions", name, existing)
        return existing
    finally:
        await admin.close()


async def _partition_count(admin: AIOKafkaAdminClient, name: str) -> int | None:
    # Listing first matters: describing a missing topic would auto-create it on brokers with
    # auto.create.topics.enable, with the broker's default partition count.
    if name not in await admin.list_topics():
        return None
    descriptions = await admin.describe_topics([name])
    for description in descriptions:
        if description.get("topic") == name and description.get("error_code", 0) == 0:
            return len(description.get("partitions", []))
    return None

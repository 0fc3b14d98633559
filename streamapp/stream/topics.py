"""The topics: their names, how keys map to partitions, and the check that they exist.

The check is the original consumer's "does new_applications exist?", kept and extended: a
missing topic is created with the configured partitions, a smaller one is warned about.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code
from aiokafka.partitioner import murmur2

from streamapp.config import Settings
from streamapp.connections import KafkaConnection

logger = logging.getLogger(__name__)

NEW_APPLICATIONS = "new_applications"
# The Faust app's id: the workers' consumer group, and the prefix of the app's own topics.
APP_ID = "streamapp"
DEAD_LETTERS = f"{NEW_APPLICATIONS}.dlq"
# The stream tables, whose changelog topics Faust names after them.
USER_COUNTS_TABLE = "applications_per_user"
MINUTE_COUNTS_TABLE = "processed_per_minute"


def changelog_topic(table: str) -> str:
    """The changelog topic of a table of the app (Faust's naming)."""
    return f"{APP_ID}-{table}-changelog"


@dataclass(frozen=True)
class TopicSpec:
    """A topic the service needs; `required` ones are warned about when missing."""

    name: str
    partitions: int
    replication_factor: int = 1
    required: bool = True
    min_insync_replicas: int = 1


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Return the topics the service needs, sized by the settings."""
    replication, in_sync = settings.topic_replication_factor, settings.min_insync_replicas
    return [
        TopicSpec(NEW_APPLICATIONS, settings.topic_partitions, replication, True, in_sync),
        TopicSpec(DEAD_LETTERS, 1, replication, False, in_sync),
    ]


def user_key(user_name: str) -> bytes:
    """The key of a user's records and table rows: the UTF-8 name, as the outbox sends it."""
    return user_name.encode()


def partition_of(key: bytes, partitions: int) -> int:
    """Return the partition Kafka's default partitioner gives `key` (murmur2, as the producer)."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


async def ensure_topics(kafka: KafkaConnection | str, specs: Sequence[TopicSpec]) -> dict[str, int]:
    """Create the topics where missing, warn where smaller than specified; return their sizes."""
    admin = AIOKafkaAdminClient(**KafkaConnection.of(kafka).client_options())
    await admin.start()
    try:
        return {spec.name: await _ensure(admin, spec) for spec in specs}
    finally:
        await admin.close()


async def _ensure(admin: AIOKafkaAdminClient, spec: TopicSpec) -> int:
    existing = await _partition_count(admin, spec.name)
    if existing is None:
        level = logging.WARNING if spec.required else logging.INFO
        message = "topic %r does not exist; creating it with %d partitions"
        logger.log(level, message, spec.name, spec.partitions)
        topic = NewTopic(
            spec.name,
            num_partitions=spec.partitions,
            replication_factor=spec.replication_factor,
            topic_configs={"min.insync.replicas": str(spec.min_insync_replicas)},
        )
        response = await admin.create_topics([topic])
        for _, code, *message in response.topic_errors:
            error = for_code(code)
            # Another process may have been first; any other refusal (say, no Create ACL)
            # is raised rather than waited on.
            if code and error is not TopicAlreadyExistsError:
                raise error(f"cannot create topic {spec.name}: {message[0] if message else ''}")
        return await _partition_count_once_visible(admin, spec.name) or spec.partitions
    if existing < spec.partitions:
        logger.warning(
            "topic %r has %d partitions, fewer than the %d configured: "
            "at most %d workers will get work",
            spec.name,
            existing,
            spec.partitions,
            existing,
        )
    else:
        logger.info("topic %r exists with %d partitions", spec.name, existing)
    return existing


async def _partition_count_once_visible(admin: AIOKafkaAdminClient, name: str) -> int | None:
    """The size of a topic just created (by us or another process): a broker's metadata may
    lag its creation for a moment, and the size it was created with is the one to report."""
    for _ in range(50):
        if (count := await _partition_count(admin, name)) is not None:
            return count
        await asyncio.sleep(0.1)
    return None


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

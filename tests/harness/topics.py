"""The state of a topic as the brokers report it: leaders, replicas, in-sync replicas."""

from __future__ import annotations

from collections import Counter

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tests.harness.effects import TOPIC


async def topic_state(servers: str) -> tuple[list[dict[str, object]], str | None]:
    """The partitions of `new_applications` (leader, replicas, isr) and its min.insync.replicas."""
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([TOPIC])
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, TOPIC)])
    finally:
        await admin.close()
    in_sync = next(
        (
            entry[1]
            for response in responses
            for resource in response.resources
            for entry in resource[4]
            if entry[0] == "min.insync.replicas"
        ),
        None,
    )
    return described["partitions"], in_sync


def leading_most(partitions: list[dict[str, object]]) -> int:
    leaders = Counter(partition["leader"] for partition in partitions)
    return int(leaders.most_common(1)[0][0])  # type: ignore[call-overload]

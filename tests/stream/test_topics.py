"""The topic check against real Kafka: create when missing, warn when too small."""

from __future__ import annotations

import logging
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streamapp.stream.topics import TopicSpec, ensure_topics


async def partitions_of(bootstrap_servers: str, name: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        [description] = await admin.describe_topics([name])
        return len(description["partitions"])
    finally:
        await admin.close()


async def test_missing_topic_is_created_with_a_warning(
    bootstrap_servers: str, caplog: pytest.LogCaptureFixture
) -> None:
    name = f"check-{uuid.uuid4().hex[:8]}"

    with caplog.at_level(logging.WARNING, logger="streamapp.stream.topics"):
        sizes = await ensure_topics(bootstrap_servers, [TopicSpec(name, partitions=4)])

    assert sizes == {name: 4}
    assert await partitions_of(bootstrap_servers, name) == 4
    assert f"topic '{name}' does not exist" in caplog.text


async def test_smaller_topic_is_kept_with_a_warning(
    bootstrap_servers: str, caplog: pytest.LogCaptureFixture
) -> None:
    name = f"check-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    await admin.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)])
    await admin.close()

    with caplog.at_level(logging.WARNING, logger="streamapp.stream.topics"):
        sizes = await ensure_topics(bootstrap_servers, [TopicSpec(name, partitions=8)])

    assert sizes == {name: 2}
    assert "has 2 partitions, fewer than the 8 configured" in caplog.text


async def test_topic_of_the_right_size_passes_quietly(
    bootstrap_servers: str, caplog: pytest.LogCaptureFixture
) -> None:
    name = f"check-{uuid.uuid4().hex[:8]}"
    spec = TopicSpec(name, partitions=3)
    await ensure_topics(bootstrap_servers, [spec])
    caplog.clear()

    with caplog.at_level(logging.WARNING, logger="streamapp.stream.topics"):
        assert await ensure_topics(bootstrap_servers, [spec]) == {name: 3}

    assert caplog.text == ""

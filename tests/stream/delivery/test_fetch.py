"""Guard 5, against real Kafka: the consumer's fetch hands over only what is still wanted;
records a fetch took for partitions nobody reads any more are put back, so they are read
again."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streamapp.stream.delivery.consumer import Records, rewind_unwanted
from streamapp.stream.topics import TopicSpec, ensure_topics
from tests.stream.delivery.conftest import Feed, FeedApp


async def new_topic(
    bootstrap_servers: str, *, filled: tuple[int, ...]
) -> tuple[TopicPartition, ...]:
    """A new topic of two partitions, five records ("partition-n") in each of `filled`."""
    name = f"fetch-{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap_servers, [TopicSpec(name, partitions=2)])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers)
    await producer.start()
    try:
        for partition in filled:
            for n in range(5):
                await producer.send_and_wait(name, f"{partition}-{n}".encode(), partition=partition)
    finally:
        await producer.stop()
    return TopicPartition(name, 0), TopicPartition(name, 1)


@pytest.fixture
async def two_partitions(bootstrap_servers: str) -> tuple[TopicPartition, ...]:
    """A new topic of two partitions with five records in each."""
    return await new_topic(bootstrap_servers, filled=(0, 1))


@pytest.fixture
async def reading_both(
    bootstrap_servers: str, two_partitions: tuple[TopicPartition, ...]
) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer assigned both partitions, reading them from their first record."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        consumer.assign(list(two_partitions))
        await consumer.seek_to_beginning(*two_partitions)
        yield consumer
    finally:
        await consumer.stop()


async def fetch_all(consumer: AIOKafkaConsumer, expected: int) -> Records:
    """Fetch until `expected` records came (of every assigned partition)."""
    records: Records = {}
    for _ in range(50):
        for tp, batch in (await consumer.getmany(timeout_ms=200)).items():
            records.setdefault(tp, []).extend(batch)
        if sum(len(batch) for batch in records.values()) >= expected:
            break
    return records


async def test_records_of_unwanted_partitions_are_read_again(
    reading_both: AIOKafkaConsumer, two_partitions: tuple[TopicPartition, ...]
) -> None:
    wanted, unwanted = two_partitions
    fetched = await fetch_all(reading_both, expected=10)
    assert {tp: len(batch) for tp, batch in fetched.items()} == {wanted: 5, unwanted: 5}

    kept = rewind_unwanted(reading_both, fetched, {wanted})

    assert list(kept) == [wanted]
    assert [record.value for record in kept[wanted]] == [f"0-{n}".encode() for n in range(5)]
    assert await reading_both.position(wanted) == 5
    assert await reading_both.position(unwanted) == 0  # sought back to its first record
    again = await fetch_all(reading_both, expected=5)
    assert list(again) == [unwanted]
    assert [record.value for record in again[unwanted]] == [f"1-{n}".encode() for n in range(5)]


async def test_records_of_partitions_no_longer_assigned_are_dropped(
    reading_both: AIOKafkaConsumer, two_partitions: tuple[TopicPartition, ...]
) -> None:
    """A partition gone with a rebalance is not sought: its next owner reads it."""
    kept_tp, _ = two_partitions
    fetched = await fetch_all(reading_both, expected=10)
    reading_both.assign([kept_tp])

    kept = rewind_unwanted(reading_both, fetched, {kept_tp})

    assert list(kept) == [kept_tp]
    assert reading_both.assignment() == {kept_tp}


async def test_a_fetch_spanning_a_rebalance_hands_over_nothing(
    feed: Feed, reading_both: AIOKafkaConsumer, two_partitions: tuple[TopicPartition, ...]
) -> None:
    """A rebalance empties the active set in place; aiokafka takes an empty set for every
    partition, and Faust would drop (and so lose) what nobody reads any more."""
    thread = feed.consumer._new_consumer_thread()
    nothing_active: set = set()

    fetched = await thread._fetch_records(reading_both, nothing_active, timeout=10.0)

    assert fetched == {}
    assert [await reading_both.position(tp) for tp in two_partitions] == [0, 0]
    again = await fetch_all(reading_both, expected=10)
    assert {tp: len(batch) for tp, batch in again.items()} == dict.fromkeys(two_partitions, 5)


@pytest.fixture
async def records_in_the_second(bootstrap_servers: str) -> tuple[TopicPartition, ...]:
    """A new topic of two partitions, five records in the second only."""
    return await new_topic(bootstrap_servers, filled=(1,))


async def test_a_waiting_fetch_hands_over_a_partition_resumed_meanwhile(
    feed: Feed, bootstrap_servers: str, records_in_the_second: tuple[TopicPartition, ...]
) -> None:
    """Faust resumes a partition whose stream buffer drained by adding it to the set a
    fetch already waits on; records already fetched for it must end that wait."""
    empty, held = records_in_the_second
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        consumer.assign([empty, held])
        await consumer.seek_to_beginning(empty, held)
        # aiokafka fetches both in the background; only the empty one is asked for.
        assert await consumer._fetcher.fetched_records({empty}, timeout=1.0) == {}
        thread = feed.consumer._new_consumer_thread()
        active = {empty}
        asyncio.get_running_loop().call_later(0.2, active.add, held)  # the buffer drained

        started = time.monotonic()
        fetched = await thread._fetch_records(consumer, active, timeout=10.0)

        assert time.monotonic() - started < 1.0
        assert [record.value for record in fetched[held]] == [f"1-{n}".encode() for n in range(5)]
    finally:
        await consumer.stop()


async def test_a_fetch_of_partitions_read_to_their_end_does_not_hold_back_the_others(
    bootstrap_servers: str, records_in_the_second: tuple[TopicPartition, ...]
) -> None:
    """aiokafka has one fetch in flight per broker, for the partitions with no records in
    hand. While the second partition's records are in hand, the next fetch asks for the empty
    first alone and waits there for new records; the second's next record must not wait for
    that fetch to give up (Faust's 1.5 s made a draining worker stand still)."""
    empty, held = records_in_the_second
    app = FeedApp(broker=f"kafka://{bootstrap_servers}")
    thread = app.consumer._new_consumer_thread()
    consumer = thread._create_worker_consumer(app.consumer.transport)  # as a worker's
    await consumer.start()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers)
    await producer.start()
    try:
        consumer.assign([empty, held])
        await consumer.seek_to_beginning(empty, held)
        # Fetched, not yet taken (a worker's buffers hold records ahead): the next fetch asks
        # for `empty` alone, and waits there. Then the records in hand are taken.
        await asyncio.sleep(0.3)
        assert len((await fetch_all(consumer, 5))[held]) == 5

        started = time.monotonic()
        await producer.send_and_wait(held.topic, b"1-5", partition=held.partition)
        fetched = await fetch_all(consumer, 1)

        assert [record.value for record in fetched[held]] == [b"1-5"]
        assert time.monotonic() - started < 0.5
    finally:
        await producer.stop()
        await consumer.stop()

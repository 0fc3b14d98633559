"""Dead letters: read them back with their reasons, and replay those that have become good.

The worker sends to `new_applications.dlq` each record it cannot process, as JSON with the
reason, where the record was, and its value (see `agents/applications.py`). Nothing consumes
that topic: it is read here from the beginning, as it stands, without a consumer group.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streamapp.connections import KafkaConnection
from streamapp.models.records import ApplicationCreated, InvalidRecord, decode_application
from streamapp.models.tables import STATUS_NEW
from streamapp.stream.topics import DEAD_LETTERS, NEW_APPLICATIONS, user_key

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead letter: the reason, and the record as the worker got it."""

    where: str  # its own place on the dead-letter topic, "new_applications.dlq[0]@5"
    source: str  # where the record was, "new_applications[3]@17"
    reason: str
    value: str | None  # the record's value (UTF-8, undecodable bytes replaced)
    truncated: bool  # the value was too large to keep whole

    @classmethod
    def from_record(cls, record: ConsumerRecord[Any, Any]) -> DeadLetter:
        where = f"{record.topic}[{record.partition}]@{record.offset}"
        try:
            body = json.loads(record.value)
        except (TypeError, ValueError):
            return cls(where, "?", "not a dead letter of this service", None, False)
        source = f"{body.get('topic')}[{body.get('partition')}]@{body.get('offset')}"
        return cls(
            where,
            source,
            str(body.get("reason")),
            body.get("value"),
            bool(body.get("truncated", False)),
        )


async def read_dead_letters(
    kafka: KafkaConnection | str, topic: str = DEAD_LETTERS
) -> list[DeadLetter]:
    """Every dead letter on the topic now, oldest first within each partition."""
    options = KafkaConnection.of(kafka).client_options()
    partitions = await _partitions(options, topic)
    if not partitions:
        return []
    consumer = AIOKafkaConsumer(**options, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        letters: list[DeadLetter] = []
        pending = {tp for tp in partitions if await consumer.position(tp) < ends[tp]}
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=1000)
            for records in batches.values():
                letters.extend(DeadLetter.from_record(record) for record in records)
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
        return letters
    finally:
        await consumer.stop()


async def _partitions(options: dict[str, Any], topic: str) -> list[TopicPartition]:
    """The topic's partitions; none if it does not exist (it is not created by asking)."""
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            return []
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    numbers = sorted(partition["partition"] for partition in described["partitions"])
    return [TopicPartition(topic, number) for number in numbers]


@dataclass(frozen=True, slots=True)
class Replayable:
    letter: DeadLetter
    record: ApplicationCreated


async def replay(
    letters: Iterable[DeadLetter],
    kafka: KafkaConnection | str,
    database_dsn: str,
    *,
    idempotent: bool = True,
) -> Counter[str]:
    """Send again, to `new_applications`, the dead letters that now decode and name an
    application still waiting to be processed; return how many went which way."""
    outcome: Counter[str] = Counter()
    candidates = []
    for letter in letters:
        decoded = _decode(letter)
        if decoded is None:
            outcome["still invalid"] += 1
        else:
            candidates.append(Replayable(letter, decoded))
    statuses = await _statuses(database_dsn, [c.record.id for c in candidates])
    due = []
    for candidate in candidates:
        status = statuses.get(candidate.record.id)
        if status == STATUS_NEW:
            due.append(candidate)
        else:
            outcome["no such application" if status is None else "already processed"] += 1
    if due:
        await _send(KafkaConnection.of(kafka), due, idempotent)
    outcome["replayed"] = len(due)
    return outcome


def _decode(letter: DeadLetter) -> ApplicationCreated | None:
    if letter.value is None or letter.truncated:
        return None
    try:
        return decode_application(letter.value.encode())
    except InvalidRecord:
        return None


async def _statuses(database_dsn: str, ids: list[int]) -> dict[int, str]:
    if not ids:
        return {}
    connection = await asyncpg.connect(database_dsn)
    try:
        rows = await connection.fetch(
            "SELECT id, status FROM applications WHERE id = ANY($1::integer[])", ids
        )
    finally:
        await connection.close()
    return {row["id"]: row["status"] for row in rows}


async def _send(kafka: KafkaConnection, due: list[Replayable], idempotent: bool) -> None:
    producer = AIOKafkaProducer(**kafka.client_options(), acks="all", enable_idempotence=idempotent)
    await producer.start()
    try:
        for candidate in due:
            assert candidate.letter.value is not None  # _decode returned a record for it
            await producer.send_and_wait(
                NEW_APPLICATIONS,
                candidate.letter.value.encode(),
                key=user_key(candidate.record.user_name),
            )
            logger.info(
                "replayed application %d from %s", candidate.record.id, candidate.letter.where
            )
    finally:
        await producer.stop()

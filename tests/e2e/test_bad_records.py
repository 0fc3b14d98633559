"""Records no producer of ours would write, put on the topic by Hypothesis: each ends in the
dead-letter topic with its reason, and the worker carries on. `streamapp dlq` lists them, and
`--replay` sends again those that have become good."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from streamapp.stream.dead_letters import DeadLetter, read_dead_letters
from tests.harness.effects import TOPIC, wait_processed
from tools.stack.processes import Worker, child_env, wait_for

UNKNOWN_IDS = st.integers(min_value=1_900_000_000, max_value=2**31 - 1)  # beyond any test's


@dataclass(frozen=True)
class BadRecord:
    key: bytes | None
    value: bytes
    reason: Callable[[str], bool]  # whether the dead letter's reason is the right one
    kind: str


def _event(**fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": 1_900_000_000,
        "user_id": 1,
        "user_name": "bad-records",
        "description": "d",
        "created_at": "2026-12-01T10:00:00+00:00",
    }
    event.update(fields)
    return event


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


random_bytes = st.binary(max_size=2000).map(
    lambda raw: BadRecord(None, raw, lambda reason: bool(reason), "random bytes")
)
not_an_object = st.one_of(st.integers(), st.lists(st.integers()), st.text(), st.none()).map(
    lambda value: BadRecord(b"k", _json(value), lambda r: r == "not a JSON object", "not object")
)
WRONG_TYPES = {
    "id": st.one_of(st.text(), st.booleans(), st.floats(allow_nan=False), st.none()),
    "user_id": st.one_of(st.text(), st.booleans(), st.lists(st.integers()), st.none()),
    "user_name": st.one_of(st.integers(), st.booleans(), st.lists(st.text()), st.none()),
    "description": st.one_of(st.integers(), st.booleans(), st.dictionaries(st.text(), st.text())),
    "created_at": st.one_of(st.booleans(), st.lists(st.integers()), st.none()),
}
wrong_type = st.sampled_from(sorted(WRONG_TYPES)).flatmap(
    lambda field: WRONG_TYPES[field].map(
        lambda value: BadRecord(
            b"bad-records",
            _json(_event(**{field: value})),
            lambda reason: f"field {field!r}" in reason,
            f"wrong type of {field}",
        )
    )
)
missing_field = st.sampled_from(sorted(WRONG_TYPES)).map(
    lambda field: BadRecord(
        None,
        _json({k: v for k, v in _event().items() if k != field}),
        lambda reason: reason == f"missing field {field!r}",
        f"missing {field}",
    )
)
out_of_range = st.sampled_from(["id", "user_id"]).flatmap(
    lambda field: st.one_of(st.integers(max_value=0), st.integers(min_value=2**31)).map(
        lambda value: BadRecord(
            b"bad-records",
            _json(_event(**{field: value})),
            lambda reason: f"field {field!r}" in reason,
            f"{field} out of range",
        )
    )
)


def _unknown(size: int) -> st.SearchStrategy[BadRecord]:
    """A well-formed event naming no stored application; its strings `size` long."""
    return st.tuples(UNKNOWN_IDS, st.booleans(), st.booleans()).map(
        lambda drawn: BadRecord(
            None if drawn[1] else b"bad-records",
            _json(
                _event(
                    id=drawn[0],
                    user_name="u" * size if drawn[2] else "bad-records",
                    description="d" * size,
                )
            ),
            lambda reason, id_=drawn[0]: reason == f"no application with id {id_}",
            f"unknown id, strings of {size}",
        )
    )


KINDS = (
    random_bytes,
    not_an_object,
    wrong_type,
    missing_field,
    out_of_range,
    _unknown(10),
    _unknown(200_000),  # huge strings: the dead letter keeps a truncated copy
)
# One of every kind, then a random mix of them.
bad_records = st.tuples(st.tuples(*KINDS), st.lists(st.one_of(*KINDS), max_size=30)).map(
    lambda drawn: [*drawn[0], *drawn[1]]
)


async def send(bootstrap_servers: str, records: list[BadRecord]) -> dict[str, BadRecord]:
    """Put the records on the topic; return them by where they landed."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, max_request_size=2**20)
    await producer.start()
    try:
        placed = {}
        for record in records:
            meta = await producer.send_and_wait(TOPIC, record.value, key=record.key)
            placed[f"{TOPIC}[{meta.partition}]@{meta.offset}"] = record
        return placed
    finally:
        await producer.stop()


async def letters_for(bootstrap_servers: str, sources: set[str]) -> dict[str, DeadLetter]:
    letters = await read_dead_letters(bootstrap_servers)
    return {letter.source: letter for letter in letters if letter.source in sources}


@settings(
    max_examples=4,
    deadline=None,
    database=None,
    phases=[Phase.generate],  # each example drives a worker: shrinking would take minutes
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(records=bad_records)
def test_every_bad_record_is_dead_lettered_with_its_reason_and_the_worker_goes_on(
    records: list[BadRecord], bootstrap_servers: str, running_worker: Worker
) -> None:
    placed = asyncio.run(send(bootstrap_servers, records))

    def arrived() -> dict[str, DeadLetter] | None:
        found = asyncio.run(letters_for(bootstrap_servers, set(placed)))
        return found if len(found) == len(placed) else None

    letters = wait_for(arrived, timeout=60, message="not every bad record was dead-lettered")
    for source, record in placed.items():
        assert record.reason(letters[source].reason), (record.kind, letters[source].reason)
        assert letters[source].truncated == (len(record.value) > 64 * 1024)
    assert running_worker.process is not None
    assert running_worker.process.poll() is None, "the worker stopped"


async def store_application(database_url: str, application_id: int, user_name: str) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        user_id = await connection.fetchval(
            "INSERT INTO users (user_name) VALUES ($1) RETURNING id", user_name
        )
        await connection.execute(
            "INSERT INTO applications (id, user_id, description) VALUES ($1, $2, 'late')",
            application_id,
            user_id,
        )
    finally:
        await connection.close()


async def test_dlq_lists_reasons_and_replays_what_became_good(
    bootstrap_servers: str,
    database_url: str,
    pg: asyncpg.Pool,
    running_worker: Worker,
    service_env: dict[str, str],
    user_name: str,
) -> None:
    application_id = random.randint(1_900_000_000, 2**31 - 1)
    event = _event(id=application_id, user_name=user_name)
    placed = await send(bootstrap_servers, [BadRecord(user_name.encode(), _json(event), bool, "")])
    (source,) = placed
    reason = f"no application with id {application_id}"

    async def dead_lettered() -> bool:
        return source in await letters_for(bootstrap_servers, {source})

    for _ in range(150):
        if await dead_lettered():
            break
        await asyncio.sleep(0.2)
    listing = await asyncio.to_thread(run_dlq, service_env)
    assert f"from {source}: {reason}" in listing

    # The application turns up after all (say, restored from a backup): replay it.
    await store_application(database_url, application_id, user_name)
    replayed = await asyncio.to_thread(run_dlq, service_env, "--replay")

    assert "replayed: " in replayed
    await wait_processed(pg, [application_id], timeout=60)
    assert running_worker.process is not None
    assert running_worker.process.poll() is None


def run_dlq(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "streamapp", "dlq", *args],
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout

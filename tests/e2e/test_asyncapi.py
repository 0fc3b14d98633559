"""/asyncapi.json describes the topics, and every record a pipeline run writes fits it: the
applications the API publishes, a dead letter, and both tables' changelog records. On a
broker of the test's own, so the topics hold this run's records only."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from jsonschema import Draft202012Validator

from streamapp.models.records import ApplicationCreated
from streamapp.stream.asyncapi import schema_of
from streamapp.stream.topics import (
    DEAD_LETTERS,
    MINUTE_COUNTS_TABLE,
    NEW_APPLICATIONS,
    USER_COUNTS_TABLE,
    changelog_topic,
)
from tests.harness.effects import read_topic, user_count, wait_processed
from tests.harness.isolated import Isolated, isolated_services
from tests.harness.postgres import PostgresServer
from tools.stack.kafka import ApacheKafka
from tools.stack.processes import eventually

FILED = 12
NOT_AN_EVENT = b"this is not an application"


@pytest.fixture
async def isolated(postgres: PostgresServer, own_kafka: ApacheKafka) -> AsyncIterator[Isolated]:
    async with isolated_services(postgres, own_kafka) as setup:
        yield setup


def resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in refs(value)]
    return []


def message_of(document: dict[str, Any], address: str) -> dict[str, Any]:
    """The one message of the channel whose address is `address`."""
    (channel,) = [c for c in document["channels"].values() if c["address"] == address]
    (message,) = channel["messages"].values()
    resolved: dict[str, Any] = resolve(document, message["$ref"])
    return resolved


def validator(schema: dict[str, Any]) -> Draft202012Validator:
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


async def test_every_record_of_a_pipeline_run_fits_the_asyncapi_document(
    isolated: Isolated,
) -> None:
    kafka = isolated.env["KAFKA_BOOTSTRAP_SERVERS"]
    user_name = f"async-{uuid.uuid4().hex[:8]}"
    worker = isolated.start_worker()
    async with isolated.api_client() as client:
        document = (await client.get("/asyncapi.json")).json()
        await eventually(lambda: _ready(worker), timeout=90)
        ids = []
        for index in range(FILED):
            body = {"user_name": user_name, "description": f"#{index}"}
            response = await client.post("/applications", json=body)
            assert response.status_code == 201
            ids.append(response.json()["id"])
        producer = AIOKafkaProducer(bootstrap_servers=kafka)
        await producer.start()
        await producer.send_and_wait(NEW_APPLICATIONS, NOT_AN_EVENT, key=b"someone")
        await producer.stop()
        await wait_processed(isolated.pg, ids)
        await eventually(lambda: user_count(worker, user_name) == FILED, timeout=30)

    assert document["asyncapi"] == "3.0.0"
    unresolved = [ref for ref in refs(document) if _unresolvable(document, ref)]
    assert not unresolved, unresolved

    checked: dict[str, int] = {}
    for address in (
        NEW_APPLICATIONS,
        DEAD_LETTERS,
        changelog_topic(USER_COUNTS_TABLE),
        changelog_topic(MINUTE_COUNTS_TABLE),
    ):
        message = message_of(document, address)
        payload = validator(message["payload"])
        key = validator(message["bindings"]["kafka"]["key"])
        headers = validator(message.get("headers", {}))
        records = await read_topic(kafka, address, lambda r: r.value != NOT_AN_EVENT, 5, 10**6)
        for record in records:
            payload.validate(json.loads(record.value))
            if address == changelog_topic(MINUTE_COUNTS_TABLE):
                key.validate(json.loads(record.key))
            elif address != DEAD_LETTERS:
                key.validate(record.key.decode())
            headers.validate({name: value.decode() for name, value in record.headers})
        checked[address] = len(records)

    assert checked[NEW_APPLICATIONS] == FILED
    assert checked[DEAD_LETTERS] == 1
    assert checked[changelog_topic(USER_COUNTS_TABLE)] >= 1
    assert checked[changelog_topic(MINUTE_COUNTS_TABLE)] >= 1


def test_a_record_that_breaks_the_schema_is_caught() -> None:
    payload = validator(schema_of(ApplicationCreated))
    good = {"id": 1, "user_id": 1, "user_name": "a", "description": None, "created_at": "x"}
    payload.validate(good)
    with pytest.raises(Exception, match="'id' is a required property"):
        payload.validate({key: value for key, value in good.items() if key != "id"})


def _unresolvable(document: dict[str, Any], ref: str) -> bool:
    try:
        resolve(document, ref)
    except (KeyError, TypeError):
        return True
    return False


def _ready(worker: Any) -> bool:
    try:
        return bool(httpx.get(f"{worker.url}/readyz/", timeout=5).status_code == 200)
    except httpx.TransportError:
        return False

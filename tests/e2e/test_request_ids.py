"""One request id traces an application: accepted (or generated) and returned by the API, in
its log lines, in the Kafka record's headers, and in the worker's line for that application;
with LOG_FORMAT=json every log line of both processes is one JSON object."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.harness.effects import TOPIC, event_id, read_topic
from tools.stack.processes import Api, Worker, api_and_worker, child_env, eventually


@pytest.fixture(scope="module")
def json_stack(service_env: dict[str, str]) -> Iterator[tuple[Api, Worker]]:
    env = child_env(**{**service_env, "LOG_FORMAT": "JSON", "LOG_LEVEL": "DEBUG"})
    with api_and_worker(env) as both:
        yield both


def json_lines(log: str) -> list[dict[str, object]]:
    """Every log line as JSON; fails on a line that is not (Faust's start-up banner, printed
    before logging is configured, is the one exception)."""
    entries = []
    for line in log.splitlines():
        if line.startswith("{"):
            entries.append(json.loads(line))
        else:
            assert "|" in line or line.startswith(("+", "[")) or not line.strip(), line
    return entries


async def test_a_request_id_travels_from_the_post_to_the_worker(
    json_stack: tuple[Api, Worker], bootstrap_servers: str, user_name: str
) -> None:
    api, worker = json_stack
    trace = f"trace-{user_name}"
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
        created = await client.post(
            "/applications",
            json={"user_name": user_name, "description": "traced"},
            headers={"X-Request-ID": trace},
        )
        assert created.status_code == 201
        assert created.headers["X-Request-ID"] == trace
        application_id = created.json()["id"]

        (record,) = await read_topic(
            bootstrap_servers, TOPIC, lambda r: event_id(r) == application_id
        )
        assert ("x-request-id", trace.encode()) in list(record.headers)

        def worker_line() -> dict[str, object] | None:
            return next(
                (
                    e
                    for e in json_lines(worker.log())
                    if e.get("request_id") == trace
                    and f"application {application_id} " in str(e["message"])
                ),
                None,
            )

        line = await eventually(
            worker_line, timeout=30, message="no worker line with the request id"
        )
        assert line["level"] == "DEBUG"
        assert str(line["message"]).endswith(": processed")
        api_lines = [e for e in json_lines(api.log()) if e.get("request_id") == trace]
        assert api_lines, "no API line carries the request id"
        assert all(set(e) >= {"time", "level", "logger", "message"} for e in api_lines)


@pytest.mark.parametrize("given", [None, "", "has space", "x" * 129, b"bad\xe9"])
async def test_a_missing_or_odd_request_id_is_replaced_by_a_new_one(
    json_stack: tuple[Api, Worker], given: str | bytes | None
) -> None:
    api, _ = json_stack
    headers = {} if given is None else {"X-Request-ID": given}
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
        first = await client.get("/healthz", headers=headers)
        second = await client.get("/healthz", headers=headers)

    assert first.headers["X-Request-ID"] not in (given, "")
    assert len(first.headers["X-Request-ID"]) == 32
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]


def test_every_api_log_line_is_json(json_stack: tuple[Api, Worker]) -> None:
    api, worker = json_stack
    lines = api.log().splitlines()

    assert lines
    assert all(json.loads(line)["level"] for line in lines)
    assert json_lines(worker.log())

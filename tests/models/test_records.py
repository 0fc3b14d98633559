"""Decoding records of new_applications: valid ones, and every way one can be broken."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from streamapp.models.records import ApplicationCreated, InvalidRecord, decode_application

VALID = {
    "id": 7,
    "user_id": 3,
    "user_name": "alice",
    "description": "text",
    "created_at": "2026-11-27T10:00:00.123456+00:00",
}


def test_decodes_a_valid_record() -> None:
    record = decode_application(json.dumps(VALID).encode())

    assert isinstance(record, ApplicationCreated)
    assert (record.id, record.user_id, record.user_name) == (7, 3, "alice")
    assert record.created_at == datetime(2026, 11, 27, 10, 0, 0, 123456, tzinfo=UTC)


def test_round_trips_what_the_api_sends() -> None:
    sent = ApplicationCreated(
        id=1, user_id=2, user_name="Юрий", description=None,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )  # fmt: skip

    assert decode_application(sent.dumps()) == sent


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "empty value"),
        (b"\xff\xfe", "not JSON"),
        (b"{not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (json.dumps({**VALID, "id": "7"}).encode(), "'id' has the wrong type"),
        (json.dumps({**VALID, "id": True}).encode(), "'id' has the wrong type"),
        (json.dumps({k: v for k, v in VALID.items() if k != "user_name"}).encode(),
         "missing field 'user_name'"),
        (json.dumps({**VALID, "created_at": "yesterday"}).encode(), "ISO 8601"),
    ],
)  # fmt: skip
def test_rejects_broken_records_with_a_reason(raw: bytes | None, reason: str) -> None:
    with pytest.raises(InvalidRecord, match=reason):
        decode_application(raw)

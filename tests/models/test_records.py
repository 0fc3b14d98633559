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


MISSING = object()


def encoded(**changes: object) -> bytes:
    """VALID with `changes` applied (MISSING removes a field), as JSON bytes."""
    fields = {**VALID, **changes}
    return json.dumps({k: v for k, v in fields.items() if v is not MISSING}).encode()


def test_decodes_a_valid_record() -> None:
    record = decode_application(json.dumps(VALID).encode())

    assert isinstance(record, ApplicationCreated)
    assert (record.id, record.user_id, record.user_name) == (7, 3, "alice")
    assert record.created_at == datetime(2026, 11, 27, 10, 0, 0, 123456, tzinfo=UTC)


def test_round_trips_what_the_api_sends() -> None:
    created_at = datetime(2026, 1, 1, tzinfo=UTC)
    sent = ApplicationCreated(
        id=1, user_id=2, user_name="Юрий", description=None, created_at=created_at
    )

    assert decode_application(sent.dumps()) == sent


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "empty value"),
        (b"\xff\xfe", "not JSON"),
        (b"{not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (encoded(id="7"), "field 'id': Input should be a valid integer"),
        (encoded(id=True), "field 'id': Input should be a valid integer"),
        (encoded(user_name=None), "field 'user_name': Input should be a valid string"),
        (encoded(user_name=MISSING), "missing field 'user_name'"),
        (encoded(created_at="yesterday"), "field 'created_at'"),
        (encoded(id=0), "field 'id': Input should be greater than or equal to 1"),
        (encoded(id=2**31), "field 'id': Input should be less than or equal to 2147483647"),
        (encoded(user_id=-3), "field 'user_id': Input should be greater than or equal to 1"),
    ],
)
def test_rejects_broken_records_with_a_reason(raw: bytes | None, reason: str) -> None:
    with pytest.raises(InvalidRecord, match=reason):
        decode_application(raw)

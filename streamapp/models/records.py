"""What crosses Kafka: the records on `new_applications` (Faust)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import faust

NEW_APPLICATIONS_TOPIC = "new_applications"
DEAD_LETTER_TOPIC = f"{NEW_APPLICATIONS_TOPIC}.dlq"


class ApplicationCreated(faust.Record, serializer="json", isodates=True):
    """An application was stored; keyed by user_name so per-user state is co-partitioned."""

    id: int
    user_id: int
    user_name: str
    description: str | None
    created_at: datetime


class InvalidRecord(ValueError):
    """A record on the topic that cannot be an ApplicationCreated; the message says why."""


_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "id": int,
    "user_id": int,
    "user_name": str,
    "description": (str, type(None)),
    "created_at": str,
}


def decode_application(raw: bytes | None) -> ApplicationCreated:
    """Decode one record value, or raise InvalidRecord naming what is wrong."""
    if raw is None:
        raise InvalidRecord("empty value")
    try:
        data: Any = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRecord(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRecord("not a JSON object")
    for field, expected in _REQUIRED.items():
        if field not in data:
            raise InvalidRecord(f"missing field {field!r}")
        value = data[field]
        if not isinstance(value, expected) or isinstance(value, bool):
            raise InvalidRecord(f"field {field!r} has the wrong type")
    try:
        return application_from_event(data)
    except ValueError:
        raise InvalidRecord("field 'created_at' is not an ISO 8601 timestamp") from None


def application_from_event(event: dict[str, Any]) -> ApplicationCreated:
    """Build the record from an event's fields (an outbox payload, or a decoded value)."""
    return ApplicationCreated(
        id=event["id"],
        user_id=event["user_id"],
        user_name=event["user_name"],
        description=event["description"],
        created_at=datetime.fromisoformat(event["created_at"]),
    )

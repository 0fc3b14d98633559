"""What crosses Kafka: the records on `new_applications` (Faust).

The record class is the one declaration of an event's shape: the outbox SQL builds the stored
payload from its field names, and the decoder below validates against its field types.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import faust
from pydantic import ConfigDict, Field, ValidationError, create_model


class ApplicationCreated(faust.Record, serializer="json", isodates=True):
    """An application was stored; keyed by user_name so per-user state is co-partitioned."""

    id: int
    user_id: int
    user_name: str
    description: str | None
    created_at: datetime


EVENT_FIELDS: tuple[str, ...] = tuple(ApplicationCreated._options.fields)


class InvalidRecord(ValueError):
    """A record on the topic that cannot be an ApplicationCreated; the message says why."""


# Strict: a JSON string is no id and `true` is no integer. Every field must be present
# (description may be null); unknown fields are ignored, so producers can add some.
# The record's integers are PostgreSQL `integer` keys: a value outside them could never name
# a stored row, and would fail the batch's statement instead of being dead-lettered.
KEY = Annotated[int, Field(ge=1, le=2**31 - 1)]
_FIELDS: dict[str, Any] = {
    name: (KEY if kind is int else kind, ...)
    for name, kind in ApplicationCreated._options.fields.items()
}
_Payload = create_model(
    "ApplicationCreatedPayload", __config__=ConfigDict(strict=True, extra="ignore"), **_FIELDS
)


def decode_application(raw: bytes | None) -> ApplicationCreated:
    """Decode one record value, or raise InvalidRecord naming what is wrong."""
    if raw is None:
        raise InvalidRecord("empty value")
    try:
        payload = _Payload.model_validate_json(raw)
    except ValidationError as exc:
        raise InvalidRecord(_reason(exc)) from None
    return ApplicationCreated(**payload.__dict__)


def _reason(exc: ValidationError) -> str:
    error: Any = exc.errors(include_url=False, include_input=False)[0]
    if error["type"] in ("json_invalid", "json_type"):
        return f"not JSON: {error['msg']}"
    if error["type"] == "model_type":
        return "not a JSON object"
    field = ".".join(str(part) for part in error["loc"])
    if error["type"] == "missing":
        return f"missing field {field!r}"
    return f"field {field!r}: {error['msg']}"

"""What crosses Kafka: the records on `new_applications`, the dead letters, the tables' rows.

`ApplicationCreated` is the one declaration of an event's shape: the outbox SQL builds the
stored payload from its field names, and the decoder validates against it, parsing each record
once, straight into the object the worker uses. `DeadLetterRecord` and `UserCounts` declare
what the worker writes to the dead-letter topic and to the per-user table. The AsyncAPI
document (streamapp/stream/asyncapi.py) takes each message's schema from these models.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer

# The record's integers are PostgreSQL `integer` keys: a value outside them could never name
# a stored row, and would fail the batch's statement instead of being dead-lettered.
Key = Annotated[int, Field(ge=1, le=2**31 - 1)]


class ApplicationCreated(BaseModel):
    """An application was stored; keyed by user_name so per-user state is co-partitioned.

    Strict: a JSON string is no id and `true` is no integer. Every field must be present
    (description may be null); unknown fields are ignored, so producers can add some.
    """

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    id: Key
    user_id: Key
    user_name: str
    description: str | None
    created_at: datetime

    def dumps(self) -> bytes:
        """The record's value, as the outbox sends it."""
        return self.model_dump_json().encode()


EVENT_FIELDS: tuple[str, ...] = tuple(ApplicationCreated.model_fields)

Offset = Annotated[int, Field(ge=0)]


class DeadLetterRecord(BaseModel):
    """A record the worker could not process, on `new_applications.dlq`: why, and where it
    was. Keyed like the record it carries."""

    reason: str = Field(description="why the record could not be processed")
    topic: str = Field(description="where the record was")
    partition: Offset
    offset: Offset
    value: str | None = Field(
        description="the record's value: its first 64 KiB as UTF-8, undecodable bytes replaced"
    )
    truncated: bool = Field(description="the value was longer than the 64 KiB kept")


class UserCounts(BaseModel):
    """A row of the `applications_per_user` table (and its changelog record's value): the
    user's processed applications, as PostgreSQL counts them."""

    processed: Annotated[int, Field(ge=0)]
    last_processed_at: datetime | None = Field(description="when the last one was processed")

    @field_serializer("last_processed_at")
    def _in_utc(self, moment: datetime | None) -> str | None:
        """ISO 8601 in UTC with its offset, as the API writes timestamps."""
        return None if moment is None else moment.astimezone(UTC).isoformat()


class InvalidRecord(ValueError):
    """A record on the topic that cannot be an ApplicationCreated; the message says why."""


def decode_application(raw: bytes | None) -> ApplicationCreated:
    """Decode one record value, or raise InvalidRecord naming what is wrong."""
    if raw is None:
        raise InvalidRecord("empty value")
    try:
        return ApplicationCreated.model_validate_json(raw)
    except ValidationError as exc:
        raise InvalidRecord(_reason(exc)) from None


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

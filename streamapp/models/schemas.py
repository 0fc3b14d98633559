"""What crosses HTTP: request and response bodies (Pydantic)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

import email_validator
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    PlainSerializer,
    StringConstraints,
)

from streamapp.models import tables

# Addresses at special-use domains (.test, .local, .invalid, ...) are well-formed, and the
# schema's "email" format allows them, so they are taken like any other (email-validator
# documents this list as the switch).
email_validator.SPECIAL_USE_DOMAIN_NAMES.clear()

# What the API accepts is what the schema publishes: each constraint below is enforced on the
# raw value and stated in OpenAPI as maxLength and a pattern (ECMA 262, as Python reads it),
# so a schema-valid value is never refused. Values are stored stripped of the whitespace
# around them.
_NO_CONTROL = r"\x00-\x1f\x7f"  # never meant in a name; PostgreSQL cannot store NUL at all
_NO_CONTROL_BUT_TAB_AND_NEWLINE = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f"


def _visible_text(forbidden: str) -> str:
    """A pattern: none of the `forbidden` characters, and not whitespace alone."""
    return f"^[^{forbidden}]*[^\\s\\x00-\\x1f\\x7f][^{forbidden}]*$"


USER_NAME_PATTERN = _visible_text(_NO_CONTROL)
DESCRIPTION_PATTERN = _visible_text(_NO_CONTROL_BUT_TAB_AND_NEWLINE)
PHONE_PATTERN = r"^\s*\+?[0-9][0-9 ()\-]*$"


def _matching(
    pattern: str, max_length: int, reason: str, description: str, min_length: int = 1
) -> list[object]:
    """The constraints of a text field: published in the schema, checked, then stripped."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):  # `$` alone would let a final newline through
            raise ValueError(reason)
        return value.strip()

    published = Field(
        min_length=min_length,
        max_length=max_length,
        description=description,
        json_schema_extra={"pattern": pattern},
    )
    return [published, AfterValidator(check)]


_USER_NAME = _matching(
    USER_NAME_PATTERN,
    tables.USER_NAME_MAX,
    "must not be blank or contain control characters",
    f"1-{tables.USER_NAME_MAX} characters, not all blank, no control characters.",
)
_DESCRIPTION = _matching(
    DESCRIPTION_PATTERN,
    tables.DESCRIPTION_MAX,
    "must not be blank or contain control characters other than tab and newline",
    f"1-{tables.DESCRIPTION_MAX} characters, not all blank, no control characters but tab "
    "and newline.",
)
_PHONE = _matching(
    PHONE_PATTERN,
    tables.PHONE_MAX,
    "must be digits, spaces, ( ) and -, with an optional leading +",
    "Digits, spaces, ( ) and -, with an optional leading +.",
    min_length=3,
)
UserName = Annotated[str, *_USER_NAME]
Description = Annotated[str, *_DESCRIPTION]
Phone = Annotated[str, *_PHONE]


def _iso(value: datetime) -> str:
    # One rendering everywhere (PostgreSQL renders the listings the same way): UTC,
    # microseconds always, "+00:00".
    return value.astimezone(UTC).isoformat(timespec="microseconds")


Timestamp = Annotated[datetime, PlainSerializer(_iso, return_type=str)]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApplicationCreate(Request):
    user_name: UserName
    description: Description


class ApplicationPublic(BaseModel):
    id: int
    user_id: int
    user_name: str
    description: str | None
    status: str
    created_at: Timestamp
    processed_at: Timestamp | None = None


class ApplicationCreatedResponse(BaseModel):
    message: str = "Application created successfully"
    id: int
    application: ApplicationPublic


class Page(BaseModel):
    """What every listing answers besides its items."""

    page: int | None = Field(description="The page number asked for; null with a cursor alone.")
    size: int
    total: int = Field(description="How many items the whole listing has.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


class ApplicationsPage(Page):
    applications: list[ApplicationPublic]


class UserCreate(Request):
    user_name: UserName
    email: Annotated[EmailStr, StringConstraints(max_length=tables.EMAIL_MAX)] | None = None
    phone: Phone | None = None


class UserPublic(BaseModel):
    id: int
    user_name: str
    email: str | None
    phone: str | None
    created_at: Timestamp


class UsersPage(Page):
    users: list[UserPublic]


class FieldError(BaseModel):
    field: str
    reason: str


class ErrorDetail(BaseModel):
    code: str
    message: str
    fields: list[FieldError] = []


class ErrorResponse(BaseModel):
    """The one error shape of every 4xx/5xx answer."""

    error: ErrorDetail


class Health(BaseModel):
    status: str
    database: str | None = None
    kafka: str | None = None

"""What crosses HTTP: request and response bodies (Pydantic)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

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

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_CHARS_BUT_WHITESPACE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _single_line(value: str) -> str:
    if _CONTROL_CHARS.search(value):
        raise ValueError("must not contain control characters")
    return value


def _text(value: str) -> str:
    # PostgreSQL cannot store NUL in text; other control characters are never meant.
    if _CONTROL_CHARS_BUT_WHITESPACE.search(value):
        raise ValueError("must not contain control characters other than tab and newline")
    return value


UserName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=tables.USER_NAME_MAX),
    AfterValidator(_single_line),
]
Description = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=tables.DESCRIPTION_MAX),
    AfterValidator(_text),
]
PHONE_PATTERN = r"^\+?[0-9][0-9 ()\-]*$"
Phone = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=3, max_length=tables.PHONE_MAX, pattern=PHONE_PATTERN
    ),
]


def _iso(value: datetime) -> str:
    # One rendering everywhere (PostgreSQL renders the listings the same way): UTC,
    # microseconds always, "+00:00".
    return value.astimezone(UTC).isoformat(timespec="microseconds")


Timestamp = Annotated[datetime, PlainSerializer(_iso, return_type=str)]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApplicationCreate(Request):
    user_name: UserName = Field(description="Who files the application (1-25 characters).")
    description: Description = Field(description="What is asked for (1-255 characters).")


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

    page: int | None = Field(description="The page number asked for; null with a cursor.")
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

"""HTTP schemas: normalisation and limits, independent of the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from streamapp.models.schemas import ApplicationCreate, ApplicationPublic, UserCreate


def test_application_fields_are_trimmed() -> None:
    application = ApplicationCreate(user_name="  bob ", description="\n text \t")

    assert (application.user_name, application.description) == ("bob", "text")


def test_description_keeps_inner_newlines_and_tabs() -> None:
    assert ApplicationCreate(user_name="b", description="a\n\tb").description == "a\n\tb"


@pytest.mark.parametrize("name", ["a\tb", "a\x7fb", "\x00"])
def test_user_name_rejects_control_characters(name: str) -> None:
    with pytest.raises(ValidationError):
        ApplicationCreate(user_name=name, description="d")


def test_email_is_normalised_and_phone_checked() -> None:
    user = UserCreate(user_name="u", email="Someone@Example.COM", phone="+1 (555) 010-9999")

    assert user.email == "Someone@example.com"
    with pytest.raises(ValidationError):
        UserCreate(user_name="u", phone="+1 phone")


def test_timestamps_serialise_in_utc_with_microseconds_and_an_offset() -> None:
    public = ApplicationPublic(
        id=1,
        user_id=1,
        user_name="u",
        description="d",
        status="new",
        created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )

    assert public.model_dump(mode="json")["created_at"] == "2026-01-02T03:04:05.000000+00:00"
    moscow = timezone(timedelta(hours=3))
    later = public.model_copy(update={"created_at": datetime(2026, 1, 2, 6, 4, 5, 7, moscow)})
    assert later.model_dump(mode="json")["created_at"] == "2026-01-02T03:04:05.000007+00:00"

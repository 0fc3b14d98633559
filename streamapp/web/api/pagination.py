"""Listing pages: `page` numbers (offsets) and opaque keyset cursors, which cost the same at
any depth. Every page answers `next_cursor`, so a client can switch to cursors at any point.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict

from fastapi import Query, Response
from fastapi.exceptions import RequestValidationError

from streamapp.services.paging import NEWEST, Slice
from streamapp.web.api.responses import JSON

PAGE_MAX = 1_000_000
SIZE_MAX = 100
CURSOR_MAX = 32
_CURSOR_PREFIX = "before:"


class Window(TypedDict):
    size: int
    before: int
    offset: int


@dataclass(frozen=True, slots=True)
class Pagination:
    """Which rows a listing request asks for: ids below `before`, after skipping `offset`."""

    size: int
    page: int | None  # None when the request names a cursor
    before: int
    offset: int

    @property
    def window(self) -> Window:
        """Which rows to fetch, as the services' listings take them."""
        return {"size": self.size, "before": self.before, "offset": self.offset}

    def envelope(self, found: Slice) -> dict[str, Any]:
        """Return the fields every page answers besides its items (see `schemas.Page`)."""
        last_id = found.last_id
        next_cursor = encode_cursor(last_id) if found.more and last_id is not None else None
        return {
            "page": self.page,
            "size": self.size,
            "total": found.total,
            "next_cursor": next_cursor,
        }


def page_response(items_field: str, found: Slice, pagination: Pagination) -> Response:
    """Answer one page: the items as PostgreSQL rendered them, then the envelope."""
    envelope = json.dumps(pagination.envelope(found), separators=(",", ":"))
    return Response(f'{{"{items_field}":{found.items},{envelope[1:]}', media_type=JSON)


def encode_cursor(last_id: int) -> str:
    """Return the cursor of the page after the row with id `last_id`."""
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """Return the id a cursor continues below; raise ValueError if it is not a cursor."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError("not a cursor of this listing") from None
    number = text.removeprefix(_CURSOR_PREFIX)
    if not text.startswith(_CURSOR_PREFIX) or not number.isdigit() or not 0 < int(number) <= NEWEST:
        raise ValueError("not a cursor of this listing")
    return int(number)


async def get_pagination(
    page: Annotated[
        int | None,
        Query(ge=1, le=PAGE_MAX, description="Page number, from 1 (deep pages cost more)."),
    ] = None,
    size: Annotated[int, Query(ge=1, le=SIZE_MAX, description="Items per page, 1-100.")] = 10,
    cursor: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=CURSOR_MAX,
            description="`next_cursor` of the previous page; as fast at any depth.",
        ),
    ] = None,
) -> Pagination:
    if cursor is None:
        number = page or 1
        return Pagination(size=size, page=number, before=NEWEST, offset=(number - 1) * size)
    if page is not None:
        raise _invalid("page", "use either page or cursor, not both")
    try:
        before = decode_cursor(cursor)
    except ValueError as exc:
        raise _invalid("cursor", str(exc)) from None
    return Pagination(size=size, page=None, before=before, offset=0)


def _invalid(field: str, reason: str) -> RequestValidationError:
    return RequestValidationError(
        [{"type": "value_error", "loc": ("query", field), "msg": reason, "input": None}]
    )

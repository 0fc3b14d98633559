"""Listing pages: `page` numbers (offsets) and keyset cursors, which cost the same at any
depth. Every page answers `next_cursor`, so a client can switch to cursors at any point.

A cursor is the id of the last row of the page before: the next page lists ids below it. Every
value its published pattern allows is a valid cursor, so nothing the schema allows is refused.
With both, `page` counts pages from the cursor on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict

from fastapi import Response
from pydantic import BaseModel, Field

from streamapp.services.paging import NEWEST, Slice
from streamapp.web.api.responses import JSON

PAGE_MAX = 1_000_000
SIZE_MAX = 100
CURSOR_PATTERN = r"^[1-9][0-9]{0,17}$"  # ids above NEWEST are taken as NEWEST


class RowBounds(TypedDict):
    """Which rows a listing fetches: `size` ids below `before`, after skipping `offset`."""

    size: int
    before: int
    offset: int


@dataclass(frozen=True, slots=True)
class Pagination:
    """Which rows a listing request asks for: ids below `before`, after skipping `offset`."""

    size: int
    page: int | None  # None for a cursor without a page
    before: int
    offset: int

    @property
    def bounds(self) -> RowBounds:
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
    return str(last_id)


class PageQuery(BaseModel):
    """A listing's query string: which page (by number, or from a cursor) and how big.

    Read by `deps.read_query`, not declared as FastAPI query parameters (see there)."""

    page: Annotated[
        int | None,
        Field(
            ge=1,
            le=PAGE_MAX,
            description="Page number, from 1 (deep pages cost more); with a cursor, counted "
            "from it.",
        ),
    ] = None
    size: Annotated[int, Field(ge=1, le=SIZE_MAX, description="Items per page, 1-100.")] = 10
    cursor: Annotated[
        str | None,
        Field(
            pattern=CURSOR_PATTERN,
            description="`next_cursor` of the previous page; as fast at any depth.",
        ),
    ] = None

    @property
    def pagination(self) -> Pagination:
        before = NEWEST if self.cursor is None else min(int(self.cursor), NEWEST)
        offset = ((self.page or 1) - 1) * self.size
        shown = self.page if self.cursor is not None else self.page or 1
        return Pagination(size=self.size, page=shown, before=before, offset=offset)

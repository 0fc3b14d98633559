"""Every dependency a route can ask for, as `Annotated` aliases.

They are coroutines so FastAPI calls them on the event loop (a plain function would be sent
to its thread pool on every request).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from databases import Database
from fastapi import Depends, Header, Query, Request

from streamapp.models.tables import IDEMPOTENCY_KEY_MAX
from streamapp.services.outbox import Outbox

PAGE_MAX = 1_000_000
SIZE_MAX = 100


async def get_db(request: Request) -> Database:
    database: Database = request.app.state.db
    return database


async def get_outbox(request: Request) -> Outbox:
    outbox: Outbox = request.app.state.outbox
    return outbox


@dataclass(frozen=True, slots=True)
class Pagination:
    page: int
    size: int

    def envelope(self, total: int) -> dict[str, Any]:
        """Return the fields every page answers besides its items (see `schemas.Page`)."""
        return {"page": self.page, "size": self.size, "total": total}


async def get_pagination(
    page: Annotated[int, Query(ge=1, le=PAGE_MAX, description="Page number, from 1.")] = 1,
    size: Annotated[int, Query(ge=1, le=SIZE_MAX, description="Items per page, 1-100.")] = 10,
) -> Pagination:
    return Pagination(page=page, size=size)


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=IDEMPOTENCY_KEY_MAX,
        pattern=r"^[\x21-\x7e]+$",
        description="Retries with the same key return the first result and store nothing.",
    ),
]
DatabaseDep = Annotated[Database, Depends(get_db)]
OutboxDep = Annotated[Outbox, Depends(get_outbox)]
PaginationDep = Annotated[Pagination, Depends(get_pagination)]

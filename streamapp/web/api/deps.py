"""Every dependency a route can ask for, as `Annotated` aliases.

They are coroutines so FastAPI calls them on the event loop (a plain function would be sent
to its thread pool on every request).
"""

from __future__ import annotations

from typing import Annotated

from databases import Database
from fastapi import Depends, Header, Request

from streamapp.models.tables import IDEMPOTENCY_KEY_MAX
from streamapp.services.outbox import Outbox
from streamapp.web.api.pagination import Pagination, get_pagination


async def get_db(request: Request) -> Database:
    database: Database = request.app.state.db
    return database


async def get_outbox(request: Request) -> Outbox:
    outbox: Outbox = request.app.state.outbox
    return outbox


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

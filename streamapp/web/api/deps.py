"""Every dependency a route can ask for, as `Annotated` aliases.

They are coroutines so FastAPI calls them on the event loop (a plain function would be sent
to its thread pool on every request).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from databases import Database
from fastapi import Depends, Header, Request

from streamapp.errors import ApiKeyRequired
from streamapp.models.tables import IDEMPOTENCY_KEY_MAX
from streamapp.services.dashboard import DashboardFeed
from streamapp.services.filing import Filer
from streamapp.services.outbox import Outbox
from streamapp.services.processed_feed import ProcessedFeed
from streamapp.web.api.pagination import Pagination, get_pagination


async def get_db(request: Request) -> Database:
    database: Database = request.app.state.db
    return database


async def get_outbox(request: Request) -> Outbox:
    outbox: Outbox = request.app.state.outbox
    return outbox


async def get_filer(request: Request) -> Filer:
    filer: Filer = request.app.state.filer
    return filer


def key_digests(keys: tuple[str, ...]) -> tuple[bytes, ...]:
    """What `require_api_key` compares: digests, so every comparison has the same length."""
    return tuple(hashlib.sha256(key.encode()).digest() for key in keys)


async def require_api_key(
    request: Request,
    api_key: Annotated[str | None, Header(alias="X-API-Key", include_in_schema=False)] = None,
) -> None:
    """With API_KEYS set, let a request through only with one of them in `X-API-Key`.

    Compared in constant time against every key (no early exit); the key is never logged.
    """
    accepted: tuple[bytes, ...] = request.app.state.api_key_digests
    if not accepted:
        return
    given = hashlib.sha256((api_key or "").encode()).digest()
    matched = False
    for digest in accepted:
        matched |= hmac.compare_digest(digest, given)
    if api_key is None or not matched:
        raise ApiKeyRequired()


async def get_dashboard(request: Request) -> DashboardFeed:
    feed: DashboardFeed = request.app.state.dashboard
    return feed


async def get_processed_feed(request: Request) -> ProcessedFeed:
    feed: ProcessedFeed = request.app.state.processed_feed
    return feed


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
FilerDep = Annotated[Filer, Depends(get_filer)]
DashboardDep = Annotated[DashboardFeed, Depends(get_dashboard)]
ProcessedFeedDep = Annotated[ProcessedFeed, Depends(get_processed_feed)]
PaginationDep = Annotated[Pagination, Depends(get_pagination)]

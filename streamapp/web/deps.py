"""Every dependency a route can ask for, as `Annotated` aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from databases import Database
from fastapi import Depends, Header, Query, Request

from streamapp.models.tables import IDEMPOTENCY_KEY_MAX
from streamapp.services.publisher import Publisher

PAGE_MAX = 1_000_000
SIZE_MAX = 100


def get_db(request: Request) -> Database:
    database: Database = request.app.state.db
    return database


def get_publisher(request: Request) -> Publisher:
    publisher: Publisher = request.app.state.publisher
    return publisher


@dataclass(frozen=True)
class Pagination:
    page: int
    size: int


def get_pagination(
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
PublisherDep = Annotated[Publisher, Depends(get_publisher)]
PaginationDep = Annotated[Pagination, Depends(get_pagination)]

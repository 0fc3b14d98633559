"""Every dependency a route can ask for, as `Annotated` aliases.

They are coroutines so FastAPI calls them on the event loop (a plain function would be sent
to its thread pool on every request).
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, TypeVar

from databases import Database
from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, StringConstraints, TypeAdapter, ValidationError

from streamapp.models.tables import IDEMPOTENCY_KEY_MAX
from streamapp.services.dashboard import DashboardFeed
from streamapp.services.outbox import Outbox
from streamapp.services.processed_feed import ProcessedFeed


async def get_db(request: Request) -> Database:
    database: Database = request.app.state.db
    return database


async def get_outbox(request: Request) -> Outbox:
    outbox: Outbox = request.app.state.outbox
    return outbox


def key_digests(keys: tuple[str, ...]) -> tuple[bytes, ...]:
    """What `RequireApiKey` compares: digests, so every comparison has the same length."""
    return tuple(hashlib.sha256(key.encode()).digest() for key in keys)


async def get_dashboard(request: Request) -> DashboardFeed:
    feed: DashboardFeed = request.app.state.dashboard
    return feed


async def get_processed_feed(request: Request) -> ProcessedFeed:
    feed: ProcessedFeed = request.app.state.processed_feed
    return feed


Query = TypeVar("Query", bound=BaseModel)

IDEMPOTENCY_KEY = "Idempotency-Key"
_idempotency_keys = TypeAdapter(
    Annotated[
        str,
        StringConstraints(min_length=1, max_length=IDEMPOTENCY_KEY_MAX, pattern=r"^[\x21-\x7e]+$"),
    ]
)
# The header in the operation's OpenAPI parameters (it is read by idempotency_key()).
IDEMPOTENCY_KEY_PARAMETER = {
    "name": IDEMPOTENCY_KEY,
    "in": "header",
    "required": False,
    "description": "Retries with the same key return the first result and store nothing.",
    "schema": _idempotency_keys.json_schema(),  # what idempotency_key() enforces
}


# The hot routes read their headers and query strings here, validated by pydantic as FastAPI
# would, rather than declaring them as FastAPI parameters or dependencies: FastAPI inspects
# each parameter's annotation on every request, and with the sub-dependencies that made a
# fifth of the API's CPU (py-spy; A/B: per POST 328 -> 259 us, per page 1 437 -> 351 us). A bad
# value is the same 422, on the same field; the schema documents them through openapi_extra.


def idempotency_key(request: Request) -> str | None:
    """The request's Idempotency-Key, if it sent one; a bad one is a 422 on that header."""
    value = request.headers.get(IDEMPOTENCY_KEY)
    if value is None:
        return None
    try:
        return _idempotency_keys.validate_python(value)
    except ValidationError as exc:
        raise _invalid(exc, "header", IDEMPOTENCY_KEY) from None


def read_query(request: Request, model: type[Query]) -> Query:
    """The request's query string as `model`; a bad value is a 422 on that parameter."""
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as exc:
        raise _invalid(exc, "query") from None


def query_parameters(model: type[BaseModel]) -> dict[str, Any]:
    """The operation's openapi_extra that documents `model`'s fields as query parameters."""
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    return {
        "parameters": [
            {
                "name": name,
                "in": "query",
                "required": name in required,
                "description": field.get("description", ""),
                "schema": field,
            }
            for name, field in schema["properties"].items()
        ]
    }


def _invalid(exc: ValidationError, *location: str) -> RequestValidationError:
    """pydantic's errors located as FastAPI locates a parameter's (header, query)."""
    errors = exc.errors(include_url=False)
    for error in errors:
        error["loc"] = (*location, *error["loc"])
    return RequestValidationError(errors)


DatabaseDep = Annotated[Database, Depends(get_db)]
OutboxDep = Annotated[Outbox, Depends(get_outbox)]
DashboardDep = Annotated[DashboardFeed, Depends(get_dashboard)]
ProcessedFeedDep = Annotated[ProcessedFeed, Depends(get_processed_feed)]

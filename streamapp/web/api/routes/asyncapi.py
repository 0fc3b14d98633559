"""/asyncapi.json: the AsyncAPI document of the topics, beside /openapi.json."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from streamapp.stream.asyncapi import asyncapi_document

router = APIRouter()


@router.get("/asyncapi.json", include_in_schema=False)
async def asyncapi(request: Request) -> dict[str, Any]:
    """Describe the Kafka topics: their messages, keys and schemas (AsyncAPI 3.0)."""
    state = request.app.state
    if getattr(state, "asyncapi", None) is None:
        state.asyncapi = asyncapi_document(state.settings)
    document: dict[str, Any] = state.asyncapi
    return document

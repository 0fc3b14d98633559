"""Answers serialized once: a route returns the body's JSON bytes, so FastAPI does not
validate and serialize the response model a second time (the model still documents it)."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import Response
from pydantic import BaseModel

JSON = "application/json"


def json_response(
    body: BaseModel, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """Return `body` as a JSON response."""
    return Response(body.model_dump_json(), status_code, headers, media_type=JSON)

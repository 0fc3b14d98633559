"""One place that turns errors into HTTP answers, all in the `ErrorResponse` shape."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import Match

from streamapp.db import UNAVAILABLE_ERRORS
from streamapp.errors import (
    ApiStopping,
    DatabaseUnavailable,
    EntityAlreadyExists,
    EntityDoesNotExist,
    IdempotencyKeyReused,
    Overloaded,
)
from streamapp.metrics import REQUESTS_SHED
from streamapp.models.schemas import ErrorDetail, ErrorResponse, FieldError

logger = logging.getLogger(__name__)

VALIDATION_FAILED = "The request is not valid"
INTERNAL_ERROR = "Internal server error"
BODY_TOO_LARGE = "The request body is larger than {limit} bytes"
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")  # no route serves HEAD or OPTIONS

# OpenAPI: the body of every error answer, and the answers every route may give.
ERROR_BODY: dict[str, Any] = {"model": ErrorResponse}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {401: ERROR_BODY, 409: ERROR_BODY}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: ERROR_BODY for code in (413, 422, 500, 503)
}


def error_response(
    status_code: int, code: str, message: str, fields: list[FieldError] | None = None
) -> JSONResponse:
    """Return the one error shape with `status_code`."""
    body = ErrorResponse(error=ErrorDetail(code=code, message=message, fields=fields or []))
    return JSONResponse(body.model_dump(), status_code=status_code)


def _field_name(location: tuple[Any, ...]) -> str:
    # ("body", "user_name") -> "user_name"; ("query", "page") -> "page"; ("body",) -> "body"
    parts = [str(part) for part in location[1:]] if len(location) > 1 else [str(location[0])]
    return ".".join(parts)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = []
    for error in exc.errors():
        location = tuple(error.get("loc", ("body",)))
        reason = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        if error.get("type") == "json_invalid":
            location, reason = ("body",), f"malformed JSON: {error.get('ctx', {}).get('error')}"
        fields.append(FieldError(field=_field_name(location), reason=reason))
    return error_response(422, "validation_error", VALIDATION_FAILED, fields)


# nginx's status for a request whose client left before its body was read: nobody reads the
# answer, and the request metrics must not count it as the client's mistake.
CLIENT_CLOSED_REQUEST = 499


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc.__cause__, ClientDisconnect):
        # E.g. a flood's client gone while its request waited for a turn.
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    if exc.status_code == 400:
        # FastAPI's only 400: a body that is not JSON at all (not even UTF-8). A body that is
        # malformed JSON is a 422 naming `body`; this is the same mistake, answered alike.
        field = FieldError(field="body", reason="not valid JSON in UTF-8")
        return error_response(422, "validation_error", VALIDATION_FAILED, [field])
    code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
        exc.status_code, "http_error"
    )
    response = error_response(exc.status_code, code, str(exc.detail))
    if exc.headers:
        response.headers.update(exc.headers)
    if exc.status_code == 405:
        response.headers["Allow"] = ", ".join(_allowed_methods(request))
    return response


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves on the request's path (Starlette names only the first
    route's, and a path such as /applications has a route per method)."""
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in request.app.router.routes
        )
    ]


async def _stopping(_: Request, exc: Exception) -> JSONResponse:
    return error_response(503, "service_unavailable", str(exc))


async def _not_found(_: Request, exc: Exception) -> JSONResponse:
    return error_response(404, "not_found", str(exc))


async def _already_exists(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, EntityAlreadyExists)
    return error_response(
        409, "conflict", str(exc), [FieldError(field=exc.field, reason="already taken")]
    )


async def _idempotency_conflict(_: Request, exc: Exception) -> JSONResponse:
    field = FieldError(field="Idempotency-Key", reason="already used with another body")
    return error_response(409, "idempotency_conflict", str(exc), [field])


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    where = f"{request.method} {request.url.path}"
    logger.warning("database unavailable during %s: %s: %s", where, type(exc).__name__, exc)
    response = error_response(503, "service_unavailable", DatabaseUnavailable.message)
    response.headers["Retry-After"] = "1"
    return response


async def _overloaded(request: Request, exc: Exception) -> JSONResponse:
    REQUESTS_SHED.labels("pool").inc()
    response = error_response(503, "service_unavailable", Overloaded.message)
    response.headers["Retry-After"] = "1"
    return response


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled error during %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", INTERNAL_ERROR)


def install_error_handlers(api: FastAPI) -> None:
    """Register every handler on `api`."""
    api.add_exception_handler(RequestValidationError, _validation_error)
    api.add_exception_handler(StarletteHTTPException, _http_error)
    api.add_exception_handler(ApiStopping, _stopping)
    api.add_exception_handler(EntityDoesNotExist, _not_found)
    api.add_exception_handler(EntityAlreadyExists, _already_exists)
    api.add_exception_handler(IdempotencyKeyReused, _idempotency_conflict)
    api.add_exception_handler(DatabaseUnavailable, _database_unavailable)
    api.add_exception_handler(Overloaded, _overloaded)
    for error in UNAVAILABLE_ERRORS:
        api.add_exception_handler(error, _database_unavailable)
    api.add_exception_handler(status.HTTP_500_INTERNAL_SERVER_ERROR, _internal_error)

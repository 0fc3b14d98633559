"""ASGI middleware: request ids, a hard cap on request body size (413 before any parsing),
request metrics, a deadline for every answer."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import logging
import re
import time
import uuid
from contextvars import ContextVar
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from streamapp import tracing
from streamapp.db import serving_request
from streamapp.errors import API_KEY_REQUIRED, REQUEST_TIMED_OUT
from streamapp.logs import current_request_id
from streamapp.metrics import REQUEST_SECONDS
from streamapp.models.tables import REQUEST_ID_MAX
from streamapp.web.api.errors import BODY_TOO_LARGE, error_response

logger = logging.getLogger(__name__)

# What a client's X-Request-ID may be; anything else is replaced by a generated id.
_CLIENT_REQUEST_ID = re.compile(rf"[A-Za-z0-9._:/+=@-]{{1,{REQUEST_ID_MAX}}}")


def header_value(scope: Scope, name: bytes) -> str:
    """A request header's value as text ('' when absent): the first of its name."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return ""


class RequestId:
    """Give each request an id: the client's `X-Request-ID` if it is a sane one, else a new
    one. It is returned in the answer, set for the request's log lines, and stored with the
    application's event, which carries it to the worker in the Kafka record's headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = header_value(scope, b"x-request-id")
        request_id = given if _CLIENT_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        token = current_request_id.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            current_request_id.reset(token)


class RequireApiKey:
    """With API_KEYS set (installed only then), answer 401 to any write (POST) without one
    of the keys in `X-API-Key`, before its body is read. Reads need no key.

    Compared in constant time against every key (no early exit); the key is never logged.
    """

    def __init__(self, app: ASGIApp, digests: tuple[bytes, ...]) -> None:
        self.app = app
        self.digests = digests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not self._accepts(scope):
            response = error_response(401, "unauthorized", API_KEY_REQUIRED)
            response.headers["WWW-Authenticate"] = 'ApiKey header="X-API-Key"'
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _accepts(self, scope: Scope) -> bool:
        given = header_value(scope, b"x-api-key")
        digest = hashlib.sha256(given.encode("latin-1")).digest()
        matched = False
        for accepted in self.digests:
            matched |= hmac.compare_digest(accepted, digest)
        return matched and given != ""


class BodySizeLimit:
    """Answer 413 to any request whose body exceeds `max_bytes`; buffer the rest for the app."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = header_value(scope, b"content-length")
        if declared.isdigit():
            # The server frames the body by its Content-Length: no more can arrive.
            if int(declared) > self.max_bytes:
                await self._reject(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            body.extend(message.get("body", b""))
            if len(body) > self.max_bytes:
                await self._reject(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(bytes(body), receive), send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = BODY_TOO_LARGE.format(limit=self.max_bytes)
        response = error_response(413, "payload_too_large", message)
        response.headers["Connection"] = "close"
        await response(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


# The probes, the metrics and the dashboard's event stream: an orchestrator's and a
# monitor's, not a user's requests.
OPERATIONS_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/events"})


class AnswerStatus:
    """Passes an answer's messages on to `send`, keeping its status (500 until it starts)."""

    def __init__(self, send: Send) -> None:
        self.status = 500
        self._send = send

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self._send(message)


class RequestMetrics:
    """Record each request's latency by method, route template and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        answer = AnswerStatus(send)
        try:
            await self.app(scope, receive, answer.send)
        finally:
            # The template, not the raw path, so ids do not explode the label set.
            template = getattr(scope.get("route"), "path", "unmatched")
            latency = _latency(scope["method"], template, answer.status)
            latency.observe(time.perf_counter() - started)


@functools.lru_cache(maxsize=512)
def _latency(method: str, template: str, status: int) -> Any:
    """Return the histogram child of one label set (a label look-up costs on every request)."""
    return REQUEST_SECONDS.labels(method, template, str(status))


# The deadline of the request being served, for routes that wait on purpose (?wait=S).
_deadline: ContextVar[asyncio.Timeout | None] = ContextVar("request_deadline", default=None)


def extend_deadline(seconds: float) -> None:
    """Give the request being served `seconds` more: a wait its client asked for."""
    deadline = _deadline.get()
    when = deadline.when() if deadline is not None else None
    if deadline is not None and when is not None:
        deadline.reschedule(when + seconds)


class RequestDeadline:
    """Answer 503 (with Retry-After) to a request not answered within `seconds`.

    On a real network a dependency that is cut off does not refuse: it hangs, and so would
    every request waiting on it (a statement on a dead connection, a pool whose connections
    are all stuck, a queue behind them). The deadline stops the request's work and answers
    at once. Once the answer has started (a stream), the deadline no longer applies.
    """

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        answered = False
        try:
            async with asyncio.timeout(self.seconds) as deadline:

                async def send_in_time(message: Message) -> None:
                    nonlocal answered
                    if message["type"] == "http.response.start":
                        answered = True
                        deadline.reschedule(None)
                    await send(message)

                token = _deadline.set(deadline)
                serving = serving_request.set(True)  # its pool waits are bounded
                try:
                    await self.app(scope, receive, send_in_time)
                finally:
                    serving_request.reset(serving)
                    _deadline.reset(token)
        except TimeoutError:
            if answered or not deadline.expired():
                raise  # not this deadline's: the app's own error
            logger.warning(
                "no answer to %s %s within %gs", scope["method"], scope["path"], self.seconds
            )
            message = REQUEST_TIMED_OUT.format(seconds=self.seconds)
            response = error_response(503, "service_unavailable", message)
            response.headers["Retry-After"] = "1"
            await response(scope, receive, send)


class TraceRequests:
    """A span for each request, when tracing is on (it is not installed otherwise): its
    method, route and status, in the caller's trace if the request carries a traceparent.
    The probes, metrics and the dashboard's stream are left out."""

    UNTRACED = OPERATIONS_PATHS

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.UNTRACED:
            await self.app(scope, receive, send)
            return
        traceparent = header_value(scope, b"traceparent") or None
        if not tracing.records_request(traceparent):
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        with tracing.server_span(method, scope["path"], traceparent) as span:
            answer = AnswerStatus(send)
            try:
                await self.app(scope, receive, answer.send)
            finally:
                route = getattr(scope.get("route"), "path", None)
                tracing.name_server_span(span, method, route, answer.status)

"""The FastAPI front end. Its lifespan opens PostgreSQL, then runs the Faust app on the same
event loop as a producer only (it never joins the workers' consumer group)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from streamapp import __version__, collector, tracing
from streamapp.config import Settings, get_settings
from streamapp.db import connect, create_database
from streamapp.refusals import CannotConnect, refuse_to_start
from streamapp.services.dashboard import DashboardFeed
from streamapp.services.filing import Filer
from streamapp.services.outbox import Outbox
from streamapp.services.processed_feed import ProcessedFeed
from streamapp.stream.lag import GroupLag
from streamapp.stream.topics import APP_ID, NEW_APPLICATIONS
from streamapp.web.api.deps import key_digests
from streamapp.web.api.errors import install_error_handlers
from streamapp.web.api.middleware import (
    BodySizeLimit,
    RequestDeadline,
    RequestId,
    RequestMetrics,
    RequireApiKey,
    TraceRequests,
)
from streamapp.web.api.routes import routers
from streamapp.web.api.shedding import ConcurrencyLimit

logger = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(api: FastAPI) -> AsyncIterator[None]:
    # Imported here: importing the Faust app declares its topics, which reads the settings.
    from streamapp.stream.producer import ProducerRunner

    settings: Settings = api.state.settings
    db = create_database(settings, pool_timeout=settings.db_pool_timeout, generic_plans=True)
    try:
        await connect(db)
    except CannotConnect as exc:
        refuse_to_start(exc)
    producer = ProducerRunner()
    await producer.start()
    outbox = Outbox(
        db=db,
        send=producer.send,
        timeout=settings.publish_timeout,
        relay_interval=settings.outbox_relay_interval,
        relay_delay=settings.outbox_relay_delay,
        relay_batch_size=settings.outbox_relay_batch_size,
        max_backoff=settings.outbox_max_backoff,
        retention=settings.outbox_retention_hours * 3600,
        redeliver_after=settings.redeliver_after,
    )
    await outbox.start()
    filer = Filer(db, topic=NEW_APPLICATIONS, publish=outbox.publish_soon)
    feed = ProcessedFeed(
        settings.asyncpg_dsn, settings.outbox_max_backoff, settings.db_connect_timeout
    )
    dashboard = DashboardFeed(
        db=db,
        lag=GroupLag(settings.kafka, APP_ID, NEW_APPLICATIONS),
        backlog=outbox.measure_backlog,
    )
    feed.add_listener(dashboard.applications_processed)
    filer.add_listener(dashboard.application_filed)
    await feed.start()
    await dashboard.start()
    api.state.db, api.state.outbox, api.state.producer = db, outbox, producer
    api.state.filer = filer
    api.state.processed_feed, api.state.dashboard = feed, dashboard
    collector.settle_after_start()
    logger.info("API ready (version %s)", __version__)
    try:
        yield
    finally:
        await dashboard.stop()
        await feed.stop()
        await filer.close()
        await outbox.stop()
        await producer.stop()
        await db.disconnect()
        tracing.shutdown()


def create_api(settings: Settings | None = None) -> FastAPI:
    """Build the ASGI app; settings are read when it is built, connections opened at start."""
    api = FastAPI(
        title="streamapp",
        version=__version__,
        description="File applications and list them; each one is published to Kafka.",
        lifespan=lifespan,
        # Metrics are Prometheus's (/metrics); FastAPI's OpenTelemetry hooks would only cost
        # a provider look-up on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    api.state.settings = settings or get_settings()
    api.state.draining = False  # set on SIGTERM by the server: /readyz answers 503
    api.state.api_key_digests = key_digests(api.state.settings.api_key_list)
    if api.state.api_key_digests:
        _document_api_keys(api)
    install_error_handlers(api)
    for router in routers:
        api.include_router(router)
    api.add_middleware(RequestDeadline, seconds=api.state.settings.api_request_timeout)
    api.add_middleware(BodySizeLimit, max_bytes=api.state.settings.max_body_bytes)
    if api.state.api_key_digests:  # outside the body's limit: a 401 reads no body
        api.add_middleware(RequireApiKey, digests=api.state.api_key_digests)
    api.add_middleware(RequestMetrics)
    if origins := api.state.settings.cors_origin_list:
        api.add_middleware(
            CORSMiddleware,
            allow_origins=list(origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "Idempotency-Key", "X-API-Key"],
            expose_headers=["Location", "Idempotent-Replayed", "Retry-After"],
            max_age=600,
        )
    # With OTEL_EXPORTER_OTLP_ENDPOINT set: the requests' and statements' spans, over OTLP.
    if tracing.configure("streamapp-api"):
        api.add_middleware(TraceRequests)
    api.add_middleware(RequestId)  # every answer and log line has its id
    if api.state.settings.api_max_concurrency:
        # Outermost: under a flood most answers are refusals, which must cost next to nothing
        # (counted by streamapp_requests_shed_total; they carry no request id).
        api.add_middleware(
            ConcurrencyLimit,
            limit=api.state.settings.api_max_concurrency,
            queue_timeout=api.state.settings.api_queue_timeout,
        )
    return api


def _document_api_keys(api: FastAPI) -> None:
    """Publish the X-API-Key scheme on the write operations (only when keys are required)."""
    generate = api.openapi

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            schema = generate()  # kept as api.openapi_schema: completed in place
            schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
            schemes["ApiKey"] = {"type": "apiKey", "in": "header", "name": "X-API-Key"}
            for operations in schema["paths"].values():
                if "post" in operations:
                    operations["post"]["security"] = [{"ApiKey": []}]
        return generate()

    api.openapi = openapi  # type: ignore[method-assign]

"""The FastAPI front end. Its lifespan opens PostgreSQL, then runs the Faust app on the same
event loop as a producer only (it never joins the workers' consumer group)."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from streamapp import __version__
from streamapp.config import Settings, get_settings
from streamapp.db import connect, create_database
from streamapp.services.outbox import Outbox
from streamapp.web.api.errors import install_error_handlers
from streamapp.web.api.middleware import BodySizeLimit, RequestMetrics
from streamapp.web.api.routes import routers

logger = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(api: FastAPI) -> AsyncIterator[None]:
    # Imported here: importing the Faust app declares its topics, which reads the settings.
    from streamapp.stream.producer import ProducerRunner

    settings: Settings = api.state.settings
    db = create_database(settings)
    await connect(db)
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
    api.state.db, api.state.outbox, api.state.producer = db, outbox, producer
    # What start-up allocated lives as long as the process: keep it out of every collection.
    gc.freeze()
    logger.info("API ready (version %s)", __version__)
    try:
        yield
    finally:
        await outbox.stop()
        await producer.stop()
        await db.disconnect()


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
    install_error_handlers(api)
    for router in routers:
        api.include_router(router)
    api.add_middleware(BodySizeLimit, max_bytes=api.state.settings.max_body_bytes)
    api.add_middleware(RequestMetrics)
    return api

"""The Faust app (`faust -A streamapp.stream.app worker`) and the channels of its topics.

Configuration is applied when Faust first reads `app.conf`: at import, for the topics
declared below, so importing this module needs valid settings.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from functools import cached_property
from typing import Any

import faust
from aiokafka.errors import KafkaError
from databases import Database
from faust.app.base import SCAN_IGNORE
from faust.types import Message
from typing_extensions import override

from streamapp import collector, tracing
from streamapp.config import Settings, get_settings, get_settings_or_exit
from streamapp.db import connect, create_database
from streamapp.logs import configure_logging
from streamapp.refusals import (
    AUTHORIZATION_ERRORS,
    CannotConnect,
    acl_refusal,
    kafka_refusal,
    refuse_to_start,
)
from streamapp.retry import Backoff, retry
from streamapp.stream.delivery import Transport
from streamapp.stream.topics import (
    APP_ID,
    DEAD_LETTERS,
    NEW_APPLICATIONS,
    ensure_topics,
    topic_specs,
)
from streamapp.web.worker.auth import require_token
from streamapp.web.worker.peers import http_client, silent_peers

BROKER_UNAVAILABLE_ERRORS = (KafkaError, OSError, TimeoutError)
# How long a producer waits for more records to share a produce request with (seconds).
PRODUCER_LINGER = 0.005


class StreamApp(faust.App):
    """faust.App that checks its topics at start and, as a worker, opens PostgreSQL.

    Starting Faust fails outright while the broker is down, so the first start waits for it
    (the API keeps taking applications into the outbox meanwhile).
    """

    database: Database | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Run first when the app stops: Faust's stop then waits for every event in hand to be
        # acked, and the delivery acks held batches only once their counts are written.
        self.before_stop: list[Callable[[], Awaitable[None]]] = []

    @override
    async def on_first_start(self) -> None:
        await super().on_first_start()
        settings = get_settings()
        if not self.producer_only:
            # Faust's worker has just set up logging its own way (at its --loglevel, WARN by
            # default under `faust -A`); LOG_LEVEL and the service's format apply from here.
            configure_logging(settings.log_level, settings.log_format)
            # With OTEL_EXPORTER_OTLP_ENDPOINT set: the batches' and statements' spans.
            tracing.configure("streamapp-worker")
        try:
            await retry(
                lambda: _topics_checked(settings),
                retry_on=BROKER_UNAVAILABLE_ERRORS,
                what="Kafka not reachable yet",
                backoff=Backoff(0.5, settings.outbox_max_backoff),
            )
            if not self.producer_only:
                self.database = create_database(settings)
                await connect(self.database)
        except CannotConnect as exc:
            refuse_to_start(exc, own_process=not self.producer_only)
        if not self.producer_only:
            collector.settle_after_start()

    @override
    def discover(
        self,
        *extra_modules: str,
        categories: Iterable[str] | None = None,
        ignore: Iterable[Any] = SCAN_IGNORE,
    ) -> None:
        # Faust scans the whole origin package for its decorators, importing every module:
        # the API (FastAPI), the dev stack and the migrations (alembic) have none, and took
        # a fifth of a worker's start.
        ignore = [*ignore, *NOT_SCANNED]
        super().discover(*extra_modules, categories=categories, ignore=ignore)

    @override
    def on_init_dependencies(self) -> Iterable[Any]:
        dependencies = super().on_init_dependencies()
        # Faust's Monitor sensor times every record in and out of every stream, for its debug
        # views only (a worker's figures are its Prometheus metrics): off the per-record path.
        self.sensors.remove(self.monitor)
        return dependencies

    @override
    def create_event(self, key: Any, value: Any, headers: Any, message: Any) -> Any:
        # Faust looks its Event class up in the settings for every record (a tenth of the
        # cost of delivering one); it is fixed once configured.
        return self._event_class(self, key, value, headers, message)

    @cached_property
    def _event_class(self) -> Any:
        return self.conf.Event

    @override
    def _new_transport(self) -> Transport:
        return Transport(self.conf.broker_consumer, self)

    @override
    async def on_stop(self) -> None:
        for hook in self.before_stop:
            await hook()
        await super().on_stop()
        if self.database is not None:
            await self.database.disconnect()
            self.database = None
        if not self.producer_only:
            tracing.shutdown()


async def _topics_checked(settings: Settings) -> None:
    """Check the topics; a broker that refuses this client (rather than being down) ends the
    start with the reason."""
    try:
        await ensure_topics(settings.kafka, topic_specs(settings))
    except AUTHORIZATION_ERRORS as exc:
        raise CannotConnect(acl_refusal(settings.kafka, exc)) from None
    except BROKER_UNAVAILABLE_ERRORS:
        refusal = await kafka_refusal(settings.kafka)
        if refusal is not None:
            raise CannotConnect(refusal) from None
        raise


# Packages without Faust decorators, left out of the worker's discovery.
NOT_SCANNED = ("streamapp.web.api", "streamapp.dev", "streamapp.migrate")

app = StreamApp(
    APP_ID, autodiscover=["streamapp.agents", "streamapp.web.worker"], origin="streamapp"
)


@app.on_configured.connect  # type: ignore[arg-type]
def _configure(sender: Any, conf: Any, **_: Any) -> None:
    settings = get_settings_or_exit()  # e.g. under `faust -A`: one line, no trace
    conf.broker = settings.kafka_broker_url
    # The same TLS and SASL as every other client (one SSL context, built with the settings).
    conf.broker_credentials = settings.kafka.faust_credentials()
    conf.store = "memory://"
    # Every table exists before the start: no second's wait for late ones.
    conf.TableManager = "streamapp.stream.table_manager:EagerTableManager"
    conf.datadir = settings.worker_data_dir
    conf.topic_partitions = settings.topic_partitions
    conf.topic_replication_factor = settings.topic_replication_factor
    conf.topic_allow_declare = True
    conf.broker_rebalance_timeout = settings.worker_rebalance_timeout
    conf.broker_session_timeout = settings.worker_session_timeout
    conf.broker_heartbeat_interval = settings.worker_heartbeat_interval
    # Static membership: a restart within the session timeout moves no partitions.
    conf.consumer_group_instance_id = settings.worker_instance_id
    conf.producer_request_timeout = settings.publish_timeout
    # The consumer's fetches, commits and joins: a fetch from a broker cut off gives up after
    # this, so its partitions are read from their new leader.
    conf.broker_request_timeout = settings.consumer_request_timeout
    conf.producer_acks = -1
    # Records sent within PRODUCER_LINGER share a produce request: under load that took a
    # fifth of the broker's CPU off each POST, for a few milliseconds more to publish.
    conf.producer_linger = PRODUCER_LINGER
    # Loopback unless configured (compose binds all interfaces inside its network).
    conf.web_bind = settings.worker_web_bind
    # Calls to other workers end after PEER_TIMEOUT, and a silent one makes a 503.
    conf.HttpClient = http_client
    middlewares: list[Any] = [silent_peers]
    if settings.worker_web_token:
        # Only callers with the token are answered (the settings require one off loopback).
        token = settings.worker_web_token.get_secret_value()
        middlewares.insert(0, require_token(token))
    conf.web_application_options = {"middlewares": middlewares}
    if settings.worker_web_host:
        # The name other workers use to reach this one (table_route forwarding).
        conf.web_host = settings.worker_web_host
    # Events carry their own timestamps; tables are rebuilt from changelogs at start.
    conf.table_cleanup_interval = 30.0
    # Room for several batches ahead of the agent, fetched in batch-sized polls. With Faust's
    # 4096-event stream buffer a worker drained a backlog at about half this rate.
    conf.stream_buffer_maxsize = max(4096, 16 * settings.worker_batch_size)
    conf.broker_max_poll_records = 2 * settings.worker_batch_size
    # Faust's repaired Cython fast path: a stream takes the events already in its buffer
    # without an await each (opt-in in faust-streaming 0.15).
    conf.cython_optimizations = True


class RawRecords(faust.Schema[bytes | None, bytes | None]):
    """Keys and values as the bytes on the topic, taken as they are.

    Faust's "raw" serializer returns the same bytes, through a registry and a codec lookup per
    key and per value: a tenth of the cost of delivering a record to the agent.
    """

    def __init__(self) -> None:
        super().__init__(key_serializer="raw", value_serializer="raw")

    @override
    def loads_key(self, app: Any, message: Message, **_: Any) -> bytes | None:
        return message.key

    @override
    def loads_value(self, app: Any, message: Message, **_: Any) -> bytes | None:
        return message.value


# Values stay raw bytes here and are decoded by the agent, so a malformed record goes to the
# dead-letter topic with its reason instead of failing inside Faust's deserializer. The API
# sends the outbox's stored JSON as it is.
new_applications = app.topic(NEW_APPLICATIONS, schema=RawRecords())
dead_letters = app.topic(DEAD_LETTERS, key_serializer="raw", value_serializer="json")

"""The Faust app (`faust -A streamapp.app worker`): topics, tables, agents.

Configuration is applied when Faust first reads `app.conf`, never at import.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import faust
from databases import Database

from streamapp.config import ConfigError, get_settings
from streamapp.db import connect, create_database
from streamapp.models.records import DEAD_LETTER_TOPIC, NEW_APPLICATIONS_TOPIC
from streamapp.topics import ensure_topic

logger = logging.getLogger(__name__)

APP_ID = "streamapp"


class StreamApp(faust.App):
    """faust.App that, as a worker, checks its topic and opens PostgreSQL before consuming."""

    database: Database | None = None

    async def on_first_start(self) -> None:
        await super().on_first_start()
        if self.producer_only:
            return
        settings = get_settings()
        await ensure_topic(
            settings.kafka_bootstrap_servers,
            NEW_APPLICATIONS_TOPIC,
            partitions=settings.topic_partitions,
            replication_factor=settings.topic_replication_factor,
        )
        await ensure_topic(
            settings.kafka_bootstrap_servers,
            DEAD_LETTER_TOPIC,
            partitions=1,
            replication_factor=settings.topic_replication_factor,
            expected=False,
        )
        self.database = create_database(settings)
        await connect(self.database)

    async def on_stop(self) -> None:
        await super().on_stop()
        if self.database is not None:
            await self.database.disconnect()
            self.database = None


app = StreamApp(
    APP_ID, autodiscover=["streamapp.agents", "streamapp.web.views"], origin="streamapp"
)


@app.on_configured.connect  # type: ignore[arg-type]
def _configure(sender: Any, conf: Any, **_: Any) -> None:
    try:
        settings = get_settings()
    except ConfigError as exc:  # e.g. under `faust -A streamapp.app worker`: one line, no trace
        sys.stderr.write(f"streamapp: {exc}\n")
        raise SystemExit(2) from None
    conf.broker = settings.kafka_broker_url
    conf.store = "memory://"
    conf.datadir = settings.worker_data_dir
    conf.topic_partitions = settings.topic_partitions
    conf.topic_replication_factor = settings.topic_replication_factor
    conf.topic_allow_declare = True
    conf.broker_rebalance_timeout = settings.worker_rebalance_timeout
    conf.broker_session_timeout = settings.worker_session_timeout
    conf.broker_heartbeat_interval = settings.worker_heartbeat_interval
    conf.producer_request_timeout = settings.publish_timeout
    conf.producer_acks = -1
    if settings.worker_web_host:
        # The name other workers use to reach this one (table_route forwarding).
        conf.web_host = settings.worker_web_host
    # Events carry their own timestamps; tables are rebuilt from changelogs at start.
    conf.table_cleanup_interval = 30.0


# Values stay raw bytes here and are decoded by the agent, so a malformed record goes to the
# dead-letter topic with its reason instead of failing inside Faust's deserializer.
new_applications = app.topic(NEW_APPLICATIONS_TOPIC, key_serializer="raw", value_serializer="raw")
dead_letters = app.topic(DEAD_LETTER_TOPIC, key_serializer="raw", value_serializer="json")

# Processed applications per user, keyed by the UTF-8 user_name exactly as the topic's records
# are (bytes keys are serialized raw; str keys would become JSON and hash elsewhere). With
# use_partitioner each changelog write goes to its key's partition, so a user's count lives in
# the same partition number as the user's records, whichever partitions a batch spans, and
# table_route finds the worker that owns it.
applications_per_user = app.Table(
    "applications_per_user",
    key_type=bytes,
    value_type=int,
    default=int,
    use_partitioner=True,
    help="Processed applications per user",
)

"""PostgreSQL tables (SQLAlchemy Core). Alembic migrations must match these exactly."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

USER_NAME_MAX = 25
DESCRIPTION_MAX = 255
EMAIL_MAX = 254
PHONE_MAX = 32
IDEMPOTENCY_KEY_MAX = 255
REQUEST_ID_MAX = 128
TRACEPARENT_MAX = 55  # version-traceid-spanid-flags: 2+1+32+1+16+1+2
STATUS_NEW = "new"
STATUS_PROCESSED = "processed"

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user_name", sa.String(USER_NAME_MAX), nullable=False),
    sa.Column("email", sa.String(EMAIL_MAX), nullable=True),
    sa.Column("phone", sa.String(PHONE_MAX), nullable=True),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    # Kept by the agent's batch statement with the applications it marks processed.
    sa.Column("processed_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_processed_at", sa.DateTime(timezone=True), nullable=True),
    sa.UniqueConstraint("user_name"),
    sa.UniqueConstraint("email"),
    # The dashboard's busiest users.
    sa.Index(None, "processed_count", "id"),
)

applications = sa.Table(
    "applications",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("description", sa.String(DESCRIPTION_MAX), nullable=True),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("status", sa.String(16), nullable=False, server_default=STATUS_NEW),
    sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("idempotency_key", sa.String(IDEMPOTENCY_KEY_MAX), nullable=True),
    # SHA-256 of the request body, so a reused Idempotency-Key with another body is a 409.
    sa.Column("request_hash", sa.String(64), nullable=True),
    sa.CheckConstraint(f"status IN ('{STATUS_NEW}', '{STATUS_PROCESSED}')", name="status"),
    # Only requests that carry a key pay for this index.
    sa.Index(
        "uq_applications_idempotency_key",
        "idempotency_key",
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    ),
    # Serves "applications of one user, newest first" (the all-applications listing uses the PK).
    sa.Index(None, "user_id", "id"),
    # Applications still waiting: counted into listing totals, looked at by the redelivery
    # sweep. They are processed within moments, so this index stays tiny.
    sa.Index("ix_applications_new", "user_id", "id", postgresql_where=sa.text("status = 'new'")),
)

# Counters kept by the agent: 'processed' is how many applications are processed in all.
totals = sa.Table(
    "totals",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False, server_default="0"),
)
PROCESSED_TOTAL = "processed"

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("topic", sa.String(255), nullable=False),
    sa.Column("key", sa.String(255), nullable=True),
    sa.Column("payload", JSONB, nullable=False),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
    # Which application the event announces, and how often it was re-sent because the
    # application was still not processed long after publishing.
    sa.Column("application_id", sa.Integer, nullable=True),
    sa.Column("redeliveries", sa.Integer, nullable=False, server_default="0"),
    # The request id of the POST that queued it, sent as the record's x-request-id header.
    sa.Column("request_id", sa.String(REQUEST_ID_MAX), nullable=True),
    # The W3C traceparent of that POST (tracing on), sent as the record's traceparent header.
    sa.Column("traceparent", sa.String(TRACEPARENT_MAX), nullable=True),
    # The relay scans only what is still unpublished, so that index stays small.
    sa.Index("ix_outbox_unpublished", "id", postgresql_where=sa.text("published_at IS NULL")),
    sa.Index(None, "application_id"),
)

# Processed applications per minute of created_at and user, kept by the agent's batch
# statement for the last two hours: the source the per-minute stream table heals from (the
# table keeps one hour). Pruned by the workers.
processed_per_minute = sa.Table(
    "processed_per_minute",
    metadata,
    sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
    # No foreign key (migration 0009): the worker writes only its moved applications' users,
    # and a key check per new (minute, user) pair cost two fifths of its batch statement.
    sa.Column("user_id", sa.Integer, nullable=False),
    sa.Column("processed", sa.Integer, nullable=False),
    sa.PrimaryKeyConstraint("minute", "user_id"),
)
MINUTES_KEPT_IN_DATABASE = 120

"""Outbox rows keep the W3C traceparent of the POST that queued them.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07

With tracing on (OTEL_EXPORTER_OTLP_ENDPOINT), the event's send joins the POST's trace, and
the record carries it on to the worker in its `traceparent` header. Rows queued with tracing
off, or from before, have none.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("traceparent", sa.String(55), nullable=True))


def downgrade() -> None:
    op.drop_column("outbox", "traceparent")

"""Outbox rows keep the request id of the POST that queued them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

The id travels with the event as the Kafka record's `x-request-id` header, so one id traces an
application from its POST to its processing. Rows from before have none.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("request_id", sa.String(128), nullable=True))


def downgrade() -> None:
    op.drop_column("outbox", "request_id")

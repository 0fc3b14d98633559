"""Redelivery of applications that stay unprocessed after their event was published.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27

outbox rows learn which application they announce (backfilled from the payload) and how often
they were re-sent; a small partial index finds the applications still waiting.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from streamapp.migrate import create_index_concurrently

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every step can run again: the index builds below commit apart from the rest, so a
    # migration that fails in one of them is simply run again.
    op.add_column(
        "outbox", sa.Column("application_id", sa.Integer, nullable=True), if_not_exists=True
    )
    op.add_column(
        "outbox",
        sa.Column("redeliveries", sa.Integer, nullable=False, server_default="0"),
        if_not_exists=True,
    )
    op.execute(
        "UPDATE outbox SET application_id = (payload->>'id')::integer "
        "WHERE jsonb_typeof(payload->'id') = 'number'"
    )
    # Built without blocking writes to outbox and applications (the service runs on), outside
    # the migration's transaction, after everything else it does has committed.
    with op.get_context().autocommit_block():
        create_index_concurrently(
            "ix_outbox_application_id",
            "outbox",
            ["application_id"],
        )
        create_index_concurrently(
            "ix_applications_waiting",
            "applications",
            ["created_at"],
            postgresql_where=sa.text("status = 'new'"),
        )


def downgrade() -> None:
    op.drop_index("ix_applications_waiting", table_name="applications")
    op.drop_index("ix_outbox_application_id", table_name="outbox")
    op.drop_column("outbox", "redeliveries")
    op.drop_column("outbox", "application_id")

"""Processed applications per minute and user; an index for the busiest users.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

`processed_per_minute` is kept by the agent's batch statement with the applications it moves,
for the last two hours: the per-minute stream table takes its counts from it, so a table that
missed a changelog write is set right by the next batch of the same user and minute. The
backfill counts the applications processed in the last two hours.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from streamapp.migrate import create_index_concurrently

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "processed_per_minute",
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("processed", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("minute", "user_id", name="pk_processed_per_minute"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_processed_per_minute_user_id_users"
        ),
        # Every step can run again: the index build below commits apart from the rest, so a
        # migration that fails in it is simply run again.
        if_not_exists=True,
    )
    op.execute(
        """
        INSERT INTO processed_per_minute (minute, user_id, processed)
        SELECT date_bin('1 minute', created_at, timestamptz 'epoch'), user_id, count(*)
        FROM applications
        WHERE status = 'processed' AND created_at >= now() - interval '2 hours'
        GROUP BY 1, 2
        ON CONFLICT (minute, user_id) DO UPDATE SET processed = excluded.processed
        """
    )
    # Built without blocking the users table's writes (a POST may create a user): outside
    # the migration's transaction, after everything else it does has committed.
    with op.get_context().autocommit_block():
        create_index_concurrently(
            "ix_users_processed_count_id",
            "users",
            ["processed_count", "id"],
        )


def downgrade() -> None:
    op.drop_index("ix_users_processed_count_id", table_name="users")
    op.drop_table("processed_per_minute")

"""The original service's schema: one applications table.

Revision ID: 0001
Revises:
Create Date: 2026-11-27

A database of the original service matches this revision: `alembic stamp 0001`, then upgrade.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What squawk (tools/migration_lint.py) finds here, accepted, and why.
SQUAWK_IGNORE = {
    "prefer-timestamp-tz": "the original service's schema as it was; 0002 makes it timestamptz",
}


def upgrade() -> None:
    op.create_table(
        "applications",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_name", sa.String(25), nullable=False),
        sa.Column("description", sa.String(255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=False), server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("id", name="pk_applications"),
    )


def downgrade() -> None:
    op.drop_table("applications")

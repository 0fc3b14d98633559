"""Users table; applications.user_id references it; timestamps become timestamptz.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27

Every distinct user_name already in applications becomes a user, so no row is lost.
Naive timestamps of the original service are taken as UTC.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What squawk (tools/migration_lint.py) finds here, accepted, and why: this revision adopts the
# original service's database, with that service stopped; its table is rewritten anyway (the
# timestamps become timestamptz), so its locks and scans block nobody.
ADOPTION = "run once, when the original service's database is adopted, with that service stopped"
SQUAWK_IGNORE = {
    "adding-not-nullable-field": ADOPTION,
    "constraint-missing-not-valid": ADOPTION,
    "adding-foreign-key-constraint": ADOPTION,
    "ban-drop-column": "user_name moves to the users table; the service reads it there",
    "changing-column-type": ADOPTION + " (naive timestamps taken as UTC)",
}


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_name", sa.String(25), nullable=False),
        sa.Column("email", sa.String(254), nullable=True),
        sa.Column("phone", sa.String(32), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("user_name", name="uq_users_user_name"),
        sa.UniqueConstraint("email", name="uq_users_email"),
    )
    op.execute(
        """
        INSERT INTO users (user_name, created_at)
        SELECT user_name, COALESCE(MIN(created_at) AT TIME ZONE 'UTC', now())
        FROM applications GROUP BY user_name ORDER BY MIN(id)
        """
    )
    op.add_column("applications", sa.Column("user_id", sa.Integer, nullable=True))
    op.execute(
        "UPDATE applications AS a SET user_id = u.id FROM users AS u WHERE u.user_name = a.user_name"
    )
    op.alter_column("applications", "user_id", nullable=False)
    op.create_foreign_key(
        "fk_applications_user_id_users", "applications", "users", ["user_id"], ["id"]
    )
    op.drop_column("applications", "user_name")
    op.execute("UPDATE applications SET created_at = now() WHERE created_at IS NULL")
    op.alter_column(
        "applications",
        "created_at",
        type_=sa.DateTime(timezone=True),
        postgresql_using="created_at AT TIME ZONE 'UTC'",
        nullable=False,
        server_default=sa.func.now(),
    )


def downgrade() -> None:
    op.add_column("applications", sa.Column("user_name", sa.String(25), nullable=True))
    op.execute(
        "UPDATE applications AS a SET user_name = u.user_name FROM users AS u WHERE u.id = a.user_id"
    )
    op.alter_column("applications", "user_name", nullable=False)
    op.alter_column(
        "applications",
        "created_at",
        type_=sa.DateTime(timezone=False),
        postgresql_using="created_at AT TIME ZONE 'UTC'",
        nullable=True,
        server_default=sa.func.now(),
    )
    op.drop_constraint("fk_applications_user_id_users", "applications", type_="foreignkey")
    op.drop_column("applications", "user_id")
    op.drop_table("users")

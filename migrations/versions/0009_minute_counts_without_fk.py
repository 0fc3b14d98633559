"""Per-minute counts no longer check their user with a foreign key.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07

`processed_per_minute` is written only by the worker's batch statement, from the user_id of
the applications it moves (each of which references its user), and kept for two hours. The
foreign key ran a trigger, and locked the user's row, for every (minute, user) pair a batch
counted for the first time: with many users each filing once a minute, that is one per
record, and it was two fifths of the statement's time. Users are never deleted.

The downgrade drops counts of users that no longer exist, then checks the key again without
blocking writes (NOT VALID, then VALIDATE).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FOREIGN_KEY = "fk_processed_per_minute_user_id_users"

SQUAWK_IGNORE = {
    "ban-drop-constraint": "only the worker's batch statement writes these rows, from "
    "applications that reference their user; no client relies on the key",
}


def upgrade() -> None:
    op.execute(f"ALTER TABLE processed_per_minute DROP CONSTRAINT IF EXISTS {FOREIGN_KEY}")


def downgrade() -> None:
    op.execute(
        "DELETE FROM processed_per_minute AS kept "
        "WHERE NOT EXISTS (SELECT 1 FROM users WHERE users.id = kept.user_id)"
    )
    op.execute(
        f"ALTER TABLE processed_per_minute ADD CONSTRAINT {FOREIGN_KEY} "
        "FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID"
    )
    op.execute(f"ALTER TABLE processed_per_minute VALIDATE CONSTRAINT {FOREIGN_KEY}")

"""Alembic migrations, run from code (`streamapp migrate`, the dev stack, tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command, op
from alembic.config import Config

from streamapp.config import Settings, get_settings

# Next to the package in a source checkout; in the working directory in the Docker image.
ALEMBIC_INI = next(
    (
        path
        for path in (Path(__file__).resolve().parent.parent / "alembic.ini", Path("alembic.ini"))
        if path.exists()
    ),
    Path("alembic.ini"),
)


DEFAULT_CONNECT_TIMEOUT: float = Settings.model_fields["db_connect_timeout"].default


def alembic_config(database_url: str | None = None) -> Config:
    """Return the Alembic config for `database_url` (default: the configured database)."""
    config = Config(str(ALEMBIC_INI))
    config.attributes["database_url"] = database_url or get_settings().asyncpg_dsn
    # A server cut off does not refuse: the connect gives up after DB_CONNECT_TIMEOUT.
    config.attributes["connect_timeout"] = (
        DEFAULT_CONNECT_TIMEOUT if database_url else get_settings().db_connect_timeout
    )
    return config


def upgrade(database_url: str | None = None, revision: str = "head") -> None:
    """Migrate the database up to `revision`."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str | None = None, revision: str = "-1") -> None:
    """Migrate the database down to `revision`."""
    command.downgrade(alembic_config(database_url), revision)


def asyncpg_dsn_of(url: str) -> str:
    """The plain `postgresql://` DSN asyncpg reads (TLS parameters included) for any of the
    URL forms accepted (`postgres://`, `postgresql+asyncpg://`)."""
    scheme, _, rest = url.partition("://")
    if scheme in ("postgres", "postgresql", "postgresql+asyncpg"):
        return f"postgresql://{rest}"
    raise ValueError(f"not a PostgreSQL URL: {scheme}://...")


def create_index_concurrently(name: str, table: str, columns: list[str], **options: Any) -> None:
    """In a migration: build an index without blocking the table's writes, so that it can be
    run again after a failure.

    Call it inside `op.get_context().autocommit_block()`. A build that failed (a lock it
    waited for past lock_timeout, a duplicate key) leaves an invalid index of that name:
    it is dropped and built again; a valid one is kept.
    """
    if not op.get_context().as_sql:
        invalid = op.get_bind().execute(
            sa.text(
                "SELECT NOT indisvalid FROM pg_index JOIN pg_class ON pg_class.oid = indexrelid "
                "WHERE relname = :name"
            ),
            {"name": name},
        )
        if invalid.scalar():
            op.drop_index(name, table_name=table, postgresql_concurrently=True)
    op.create_index(
        name, table, columns, postgresql_concurrently=True, if_not_exists=True, **options
    )

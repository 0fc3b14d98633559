"""Alembic migrations, run from code (`streamapp migrate`, the dev stack, tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
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

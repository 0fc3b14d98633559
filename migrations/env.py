"""Alembic environment: runs migrations over asyncpg with the URL from streamapp's settings."""

from __future__ import annotations

import asyncio

import asyncpg
from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from streamapp.config import get_settings
from streamapp.migrate import asyncpg_dsn_of
from streamapp.models.tables import metadata

config = context.config
target_metadata = metadata

# Every migration waits at most this long for a lock: behind a DDL statement that waits, every
# query on the table would wait too. One that fails for it can be run again when it is quieter.
LOCK_TIMEOUT = "5s"
# And no statement runs longer than this (a backfill or index build on a big table, not stuck).
STATEMENT_TIMEOUT = "30min"


def _limit_waits() -> None:
    context.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
    context.execute(f"SET statement_timeout = '{STATEMENT_TIMEOUT}'")


def database_url() -> str:
    """Return the URL a caller passed in (tests, `streamapp migrate`), else the settings' one."""
    url = config.attributes.get("database_url")
    return asyncpg_dsn_of(str(url) if url else get_settings().asyncpg_dsn)


def connect_timeout() -> float:
    """DB_CONNECT_TIMEOUT: a server cut off does not refuse, and asyncpg would wait 60 s."""
    given = config.attributes.get("connect_timeout")
    return float(given) if given is not None else get_settings().db_connect_timeout


def run_offline() -> None:
    context.configure(
        url="postgresql+asyncpg://", target_metadata=target_metadata, literal_binds=True
    )
    with context.begin_transaction():
        _limit_waits()
        context.run_migrations()


def _run_sync(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        _limit_waits()
        context.run_migrations()


async def run_online() -> None:
    # asyncpg connects from the DSN itself, so sslmode, sslrootcert, sslcert and sslkey in it
    # apply as they do to the service's own connections.
    dsn = database_url()
    engine = create_async_engine(
        "postgresql+asyncpg://",
        async_creator=lambda: asyncpg.connect(dsn, timeout=connect_timeout()),
    )
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_sync)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    asyncio.run(run_online())

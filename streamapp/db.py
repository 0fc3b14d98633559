"""The PostgreSQL connection pool (`databases` over asyncpg) and what counts as "database down"."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from databases import Database

from streamapp.config import Settings
from streamapp.errors import DatabaseUnavailable
from streamapp.refusals import CannotConnect, postgres_refusal
from streamapp.retry import Backoff, retry

# Errors that mean PostgreSQL is unreachable, restarting or shutting down: answered with 503
# and retried by background loops, never shown to a client as a 500.
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
)


def create_database(settings: Settings) -> Database:
    """Return a connection manager for the configured database (not yet connected)."""
    dsn = settings.asyncpg_dsn
    return Database(
        dsn,
        # `databases` hands asyncpg the URL's parts, not its query: the DSN itself carries
        # sslmode, sslrootcert, sslcert and sslkey, which asyncpg reads as libpq does.
        dsn=dsn,
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
        command_timeout=settings.db_command_timeout,
        # A host cut off does not refuse: without a bound, a connect waits for asyncpg's 60 s.
        timeout=settings.db_connect_timeout,
        reset=_keep_session,
        server_settings={"timezone": "UTC"},
    )


async def _keep_session(connection: Any) -> None:
    """Return a connection to the pool as it is.

    asyncpg's default reset runs RESET ALL, CLOSE ALL, UNLISTEN * and an advisory unlock on
    every release: one more statement per request. Pooled connections here never change
    session state, and the pool still rolls back a transaction left open.
    """


async def connect(db: Database, *, within: float = 30.0) -> None:
    """Open the pool, waiting up to `within` seconds for PostgreSQL to accept connections."""

    async def attempt() -> None:
        try:
            await db.connect()
        except Exception as exc:
            refusal = postgres_refusal(exc, f"{db.url.hostname}:{db.url.port}")
            if refusal is not None:
                raise CannotConnect(refusal) from None
            raise

    try:
        await retry(
            attempt,
            retry_on=UNAVAILABLE_ERRORS,
            what="PostgreSQL not reachable yet",
            backoff=Backoff(0.5, 5.0),
            within=within,
        )
    except UNAVAILABLE_ERRORS as exc:
        raise DatabaseUnavailable(
            f"PostgreSQL at {db.url.hostname}:{db.url.port} did not accept connections "
            f"within {within:.0f}s ({type(exc).__name__}: {exc})"
        ) from None


@asynccontextmanager
async def raw_connection(db: Database) -> AsyncIterator[Any]:
    """Yield the asyncpg connection `databases` manages, for hot paths (one round trip)."""
    async with db.connection() as connection:
        yield connection.raw_connection

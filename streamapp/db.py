"""The PostgreSQL connection pool (`databases` over asyncpg) and what counts as "database down"."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

import asyncpg
import databases
from databases.core import Connection
from typing_extensions import override

from streamapp.config import Settings
from streamapp.errors import DatabaseUnavailable, Overloaded
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


# Set while the API serves a request (and in the tasks it starts): the waits of a request for
# a pooled connection are bounded, those of background work (the outbox relay) are not.
serving_request: ContextVar[bool] = ContextVar("serving_request", default=False)


class Database(databases.Database):
    """`databases`' pool, with an optional bound on a request's wait for a free connection:
    past `pool_timeout` seconds, Overloaded (the API answers 503 at once) rather than a queue
    that grows for as long as more requests come than the pool serves."""

    def __init__(self, url: str, *, pool_timeout: float | None = None, **options: Any) -> None:
        super().__init__(url, **options)
        self.pool_timeout = pool_timeout

    @override
    def connection(self) -> Connection:
        if self.pool_timeout is None or self._global_connection is not None:
            return super().connection()
        # As the base class does (one connection per task), with the bounded wait.
        if not self._connection:
            self._connection = _BoundedConnection(self, self._backend)
        return self._connection


class _BoundedConnection(Connection):
    _database: Database

    @override
    async def __aenter__(self) -> Connection:
        if not serving_request.get():
            return await super().__aenter__()
        try:
            async with asyncio.timeout(self._database.pool_timeout) as waited:
                return await super().__aenter__()
        except TimeoutError:
            if waited.expired():
                raise Overloaded() from None
            raise  # asyncpg's own (a new connection that did not open in time)


# PostgreSQL plans a prepared statement anew at each execution (a "custom" plan) until its
# generic plan is estimated to cost no more. A listing's generic plan cannot know the page's
# size or offset, so it is never estimated cheaper, and planning was half of what page 1 cost
# the database (0.58 ms a statement, 0.28 ms with the generic plan, at 1,000,000 rows). The
# API's connections plan each statement once, and never choose a table scan where an index
# serves: a generic plan lasts until the table's statistics change, and one made while the
# tables were empty (a scan is cheapest there) would still scan them at millions of rows. The
# statements are written so that their plans are index look-ups and ranges whatever the
# guessed sizes; tests/services/test_generic_plans.py holds each to it.
GENERIC_PLANS = {"plan_cache_mode": "force_generic_plan", "enable_seqscan": "off"}
_SET_GENERIC_PLANS = "; ".join(f"SET {name} = {value}" for name, value in GENERIC_PLANS.items())


def create_database(
    settings: Settings, *, pool_timeout: float | None = None, generic_plans: bool = False
) -> Database:
    """Return a connection manager for the configured database (not yet connected); with
    `pool_timeout`, a wait for a pooled connection longer than that raises Overloaded. With
    `generic_plans`, each prepared statement is planned once per connection rather than at
    every execution (see `GENERIC_PLANS`)."""
    dsn = settings.asyncpg_dsn
    return Database(
        dsn,
        pool_timeout=pool_timeout,
        # `databases` hands asyncpg the URL's parts, not its query: the DSN itself carries
        # sslmode, sslrootcert, sslcert and sslkey, which asyncpg reads as libpq does.
        dsn=dsn,
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
        command_timeout=settings.db_command_timeout,
        # A host cut off does not refuse: without a bound, a connect waits for asyncpg's 60 s.
        timeout=settings.db_connect_timeout,
        reset=_keep_session,
        init=_plan_once if generic_plans else None,
        server_settings={"timezone": "UTC"},
    )


async def _plan_once(connection: Any) -> None:
    """Apply GENERIC_PLANS to a new pooled connection. With SET, not in the startup packet:
    PgBouncer refuses a connection whose startup packet names a parameter it does not track."""
    await connection.execute(_SET_GENERIC_PLANS)


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
async def raw_connection(db: databases.Database) -> AsyncIterator[Any]:
    """Yield the asyncpg connection `databases` manages, for hot paths (one round trip)."""
    async with db.connection() as connection:
        yield connection.raw_connection

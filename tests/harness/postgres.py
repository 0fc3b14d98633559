"""PostgreSQL for tests: the server named by TEST_DATABASE_URL, or an embedded one.

Every test database is created here under a fresh name and dropped afterwards; the suite
never touches a database it did not create.
"""

from __future__ import annotations

import uuid

import asyncpg
from sqlalchemy.engine import make_url

from streamapp.dev.postgres import EmbeddedPostgres


class PostgresServer:
    """Creates and drops throw-away databases on one server."""

    def __init__(self, admin_url: str, embedded: EmbeddedPostgres | None = None) -> None:
        self.admin_url = admin_url
        self.embedded = embedded

    def url_for(self, database: str) -> str:
        url = make_url(self.admin_url).set(database=database)
        return url.render_as_string(hide_password=False)

    async def create_database(self, prefix: str = "streamapp_test") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        connection = await asyncpg.connect(self.admin_url)
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()
        return self.url_for(name)

    async def drop_database(self, url: str) -> None:
        name = make_url(url).database
        assert name, url
        assert name.startswith("streamapp_test"), name
        connection = await asyncpg.connect(self.admin_url)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()

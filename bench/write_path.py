"""Write-path benchmark: the create statement against baselines measured in the same run.

    .venv/bin/python bench/write_path.py [--seconds 5] [--concurrency 32]

Starts an embedded PostgreSQL, migrates it, then runs each variant for the same time with the
same concurrency and prints rows/s and the ratio to the one-INSERT baseline. This machine is
shared and noisy: compare ratios within one run, not absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable

import asyncpg
from databases import Database

from streamapp import migrate
from streamapp.dev.postgres import EmbeddedPostgres
from streamapp.models.schemas import ApplicationCreate
from streamapp.services import applications

Variant = Callable[[int], Awaitable[object]]


async def measure(variant: Variant, seconds: float, concurrency: int) -> float:
    counter = itertools.count()
    deadline = time.perf_counter() + seconds
    done = 0

    async def loop() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await variant(next(counter))
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return done / (time.perf_counter() - started)


async def main(seconds: float, concurrency: int) -> None:
    server = EmbeddedPostgres()
    server.start()
    try:
        url = server.create_database("bench")
        await asyncio.to_thread(migrate.upgrade, url)
        pool = await asyncpg.create_pool(url, min_size=10, max_size=10)
        db = Database(url, min_size=10, max_size=10)
        await db.connect()
        await pool.execute(
            "CREATE TABLE baseline (id serial PRIMARY KEY, user_name text, body text)"
        )

        async def one_insert(i: int) -> object:
            return await pool.execute(
                "INSERT INTO baseline (user_name, body) VALUES ($1, $2)", f"u{i % 100}", "text"
            )

        async def three_statements(i: int) -> object:
            async with db.transaction():
                user_id = await db.fetch_val(
                    "INSERT INTO users (user_name) VALUES (:n) ON CONFLICT (user_name) "
                    "DO UPDATE SET user_name = EXCLUDED.user_name RETURNING id",
                    {"n": f"t{i % 100}"},
                )
                app_id = await db.fetch_val(
                    "INSERT INTO applications (user_id, description) VALUES (:u, 'text') "
                    "RETURNING id",
                    {"u": user_id},
                )
                return await db.execute(
                    "INSERT INTO outbox (topic, key, payload) VALUES ('t', :k, "
                    "jsonb_build_object('id', CAST(:a AS integer)))",
                    {"k": f"t{i % 100}", "a": app_id},
                )

        async def create_statement(i: int) -> object:
            application = ApplicationCreate(user_name=f"c{i % 100}", description="text")
            return await applications.create(db=db, application_in=application, topic="t")

        variants: dict[str, Variant] = {
            "one INSERT (asyncpg, baseline)": one_insert,
            "3 statements in a transaction (databases)": three_statements,
            "streamapp create: one statement (databases' asyncpg connection)": create_statement,
        }
        for variant in variants.values():
            await measure(variant, 1.0, concurrency)  # warm-up
        results = {name: await measure(v, seconds, concurrency) for name, v in variants.items()}
        baseline = next(iter(results.values()))
        for name, rate in results.items():
            print(f"{rate:9.0f} rows/s  {rate / baseline:5.2f}x  {name}")
        await db.disconnect()
        await pool.close()
    finally:
        server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.seconds, arguments.concurrency))

"""Filing many applications per statement: every request gets its own application and event,
exactly what the one-row statement would have stored, and a bad row fails alone."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from databases import Database

from streamapp import migrate
from streamapp.errors import IdempotencyKeyReused
from streamapp.logs import current_request_id
from streamapp.models.schemas import ApplicationCreate
from streamapp.services.applications import Created, Replayed
from streamapp.services.filing import Filer
from streamapp.services.outbox import OutboxEvent
from tests.harness.postgres import PostgresServer

TOPIC = "filing-test"


@pytest.fixture(scope="module")
async def filing_database(postgres: PostgresServer) -> AsyncIterator[str]:
    """A database of its own: no API's outbox relay sends what these tests store."""
    url = await postgres.create_database()
    await asyncio.to_thread(migrate.upgrade, url)
    yield url
    await postgres.drop_database(url)


@pytest.fixture
async def pg(filing_database: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(filing_database, min_size=1, max_size=2)
    yield pool
    await pool.close()


@pytest.fixture
async def filed(filing_database: str) -> AsyncIterator[tuple[Filer, list[OutboxEvent]]]:
    """A filer on its own pool, and the events it queued for publishing."""
    db = Database(filing_database, min_size=2, max_size=4)
    await db.connect()
    published: list[OutboxEvent] = []
    try:
        yield Filer(db, topic=TOPIC, publish=published.append), published
    finally:
        await db.disconnect()


def application(user_name: str, description: str) -> ApplicationCreate:
    return ApplicationCreate(user_name=user_name, description=description)


async def test_concurrent_filings_share_statements_and_each_gets_its_own(
    filed: tuple[Filer, list[OutboxEvent]], pg: asyncpg.Pool
) -> None:
    filer, published = filed
    prefix = uuid.uuid4().hex[:8]
    asked = [application(f"{prefix}-{i % 7}", f"text {i}") for i in range(300)]

    results = await asyncio.gather(*(filer.file(a) for a in asked))

    assert all(isinstance(r, Created) for r in results)
    for wanted, result in zip(asked, results, strict=True):
        assert result.application["user_name"] == wanted.user_name
        assert result.application["description"] == wanted.description
    ids = [r.application["id"] for r in results]
    assert len(set(ids)) == 300
    rows = await pg.fetch(
        "SELECT a.id, u.user_name, a.description, a.created_at FROM applications AS a "
        "JOIN users AS u ON u.id = a.user_id WHERE a.id = ANY($1)",
        ids,
    )
    stored = {row["id"]: (row["user_name"], row["description"]) for row in rows}
    assert stored == {
        r.application["id"]: (w.user_name, w.description)
        for w, r in zip(asked, results, strict=True)
    }
    # Seven new users, each created once although many batches named them at once.
    assert (
        await pg.fetchval("SELECT count(*) FROM users WHERE user_name LIKE $1", f"{prefix}-%") == 7
    )
    # Batched: applications committed together share their transaction's created_at.
    assert len({row["created_at"] for row in rows}) < 300 / 2
    # One outbox row and one queued event per application, with its own payload.
    outbox = await pg.fetch(
        "SELECT application_id, key, payload::text AS payload FROM outbox "
        "WHERE application_id = ANY($1)",
        ids,
    )
    assert sorted(row["application_id"] for row in outbox) == sorted(ids)
    for row in outbox:
        assert json.loads(row["payload"])["id"] == row["application_id"]
        assert row["key"] == stored[row["application_id"]][0]
    assert sorted(e.id for e in published) == sorted(r.event.id for r in results)


async def test_idempotency_keys_in_one_batch_replay_or_conflict(
    filed: tuple[Filer, list[OutboxEvent]], pg: asyncpg.Pool, user_name: str
) -> None:
    filer, published = filed
    key, other_key = str(uuid.uuid4()), str(uuid.uuid4())
    same = application(user_name, "the same body")

    results = await asyncio.gather(
        *(filer.file(same, idempotency_key=key) for _ in range(5)),
        filer.file(application(user_name, "another body"), idempotency_key=key),
        filer.file(same, idempotency_key=other_key),
        return_exceptions=True,
    )

    # Filed in arrival order: the first stores, its retries replay it, and the same key with
    # another body is refused.
    assert isinstance(results[0], Created)
    assert all(isinstance(r, Replayed) for r in results[1:5])
    assert {r.application["id"] for r in results[:5]} == {results[0].application["id"]}
    assert isinstance(results[5], IdempotencyKeyReused)
    assert isinstance(results[6], Created)
    count = "SELECT count(*) FROM applications WHERE idempotency_key = $1"
    assert await pg.fetchval(count, key) == 1
    assert await pg.fetchval(count, other_key) == 1
    assert len(published) == 2


async def test_a_row_the_database_refuses_fails_alone(
    filed: tuple[Filer, list[OutboxEvent]], pg: asyncpg.Pool, user_name: str
) -> None:
    filer, published = filed
    good = [application(user_name, f"good {i}") for i in range(20)]
    # PostgreSQL text cannot hold NUL: a row the schema would refuse, slipped past it.
    bad = ApplicationCreate.model_construct(user_name=user_name, description="bad \x00")

    results = await asyncio.gather(
        *(filer.file(a) for a in good[:10]),
        filer.file(bad),
        *(filer.file(a) for a in good[10:]),
        return_exceptions=True,
    )

    assert isinstance(results[10], asyncpg.PostgresError)
    fine = results[:10] + results[11:]
    assert all(isinstance(r, Created) for r in fine)
    descriptions = await pg.fetch(
        "SELECT a.description FROM applications AS a JOIN users AS u ON u.id = a.user_id "
        "WHERE u.user_name = $1",
        user_name,
    )
    assert sorted(row["description"] for row in descriptions) == sorted(a.description for a in good)
    assert len(published) == 20


async def test_a_filing_given_up_before_any_statement_took_it_is_never_stored(
    filed: tuple[Filer, list[OutboxEvent]], pg: asyncpg.Pool, user_name: str
) -> None:
    filer, published = filed
    async with pg.acquire() as blocker, blocker.transaction():
        # Both statements in flight wait on the table's lock; the third filing queues.
        await blocker.execute("LOCK TABLE applications IN ACCESS EXCLUSIVE MODE")
        in_flight = []
        for i in (1, 2):
            in_flight.append(asyncio.create_task(filer.file(application(user_name, f"held {i}"))))
            await asyncio.sleep(0.2)  # its statement starts (and waits) before the next
        with pytest.raises(TimeoutError):
            # What the request's deadline does to a request still queued.
            await asyncio.wait_for(filer.file(application(user_name, "given up")), 0.3)
    await asyncio.gather(*in_flight)

    stored = await pg.fetch(
        "SELECT a.description FROM applications AS a JOIN users AS u ON u.id = a.user_id "
        "WHERE u.user_name = $1",
        user_name,
    )
    assert sorted(row["description"] for row in stored) == ["held 1", "held 2"]
    assert len(published) == 2


async def test_a_batch_runs_in_no_request_s_context_and_a_lone_filing_in_its_own(
    filed: tuple[Filer, list[OutboxEvent]], user_name: str
) -> None:
    """The context (trace, request id) a statement runs in: a batch's is not the request's
    that happened to start it (its trace would hold the other requests' statements)."""
    filer, _ = filed
    seen: dict[str, str | None] = {}  # description -> the request id its statement ran under
    filer.add_listener(
        lambda stored: seen.update({stored["description"]: current_request_id.get()})
    )

    async def file_as(request_id: str) -> Created | Replayed:
        current_request_id.set(request_id)  # in this task's context only
        return await filer.file(application(user_name, request_id))

    await asyncio.create_task(file_as("alone"))
    await asyncio.gather(*(asyncio.create_task(file_as(f"many {i}")) for i in range(20)))

    assert seen["alone"] == "alone"
    batched = {d: r for d, r in seen.items() if d != "alone"}
    assert len(batched) == 20
    assert all(r in (None, d) for d, r in batched.items()), batched  # never another's
    assert None in batched.values()  # some were stored together

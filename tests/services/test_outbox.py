"""The outbox: published rows are pruned after the retention time, unpublished ones never."""

from __future__ import annotations

from typing import Any

import asyncpg


async def test_prune_deletes_only_old_published_rows(api: Any, pg: asyncpg.Pool) -> None:
    ids = await pg.fetch(
        # created_at in the future keeps the unpublished row away from the running relay.
        "INSERT INTO outbox (topic, key, payload, created_at, published_at) VALUES "
        "('t', 'old-published', '{}', now() - interval '4 days', now() - interval '3 days'), "
        "('t', 'old-unpublished', '{}', now() + interval '1 hour', NULL), "
        "('t', 'new-published', '{}', now(), now()) RETURNING id, key"
    )

    await api.state.outbox.prune_once()

    remaining = await pg.fetch(
        "SELECT key FROM outbox WHERE id = ANY($1)", [row["id"] for row in ids]
    )
    assert sorted(row["key"] for row in remaining) == ["new-published", "old-unpublished"]
    await pg.execute("DELETE FROM outbox WHERE id = ANY($1)", [row["id"] for row in ids])

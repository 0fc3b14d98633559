"""Listing queries: one page of rows in id order (newest first), rendered as JSON by
PostgreSQL, with the listing's total.

The rows go from PostgreSQL to the client as the JSON PostgreSQL writes for them (`json_agg`;
timestamps rendered as the API renders them), with no Python object per row: on a listing most
of a request's time went into decoding rows and serializing them again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NEWEST = 2**31 - 1  # above every id: where the first page starts

# $1: ids below this; $2: page size; $3: rows to skip. {ids} selects the ids of the rows in
# order (with those three), {row} the columns of the one row whose id is `page.id`, {total}
# the listing's total. Each row is looked up on its own (a lateral subquery that OFFSET 0
# keeps from being merged into a join), so the plan is the same whatever the planner guesses
# of the page's size: the API's connections reuse one generic plan per statement instead of
# planning each execution, and a generic plan that joined a guessed tenth of the table by hash
# would read all of it.
_PAGE_SQL = """
WITH total AS ({total}), page AS ({ids} ORDER BY id DESC LIMIT $2 + 1 OFFSET $3),
listed AS (SELECT found.* FROM page CROSS JOIN LATERAL ({row} OFFSET 0) AS found),
shown AS (SELECT * FROM listed ORDER BY id DESC LIMIT $2)
SELECT total.total,
       (SELECT coalesce(json_agg(shown ORDER BY shown.id DESC), '[]') FROM shown)::text AS items,
       (SELECT min(id) FROM shown) AS last_id,
       (SELECT count(*) FROM listed) > $2 AS more
FROM total
"""


def iso_timestamp(column: str) -> str:
    """Return SQL that renders a timestamptz as the API does: UTC, microseconds, +00:00."""
    name = column.rpartition(".")[2]
    return (
        f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"') AS {name}"""
    )


def page_sql(*, total: str, ids: str, row: str) -> str:
    """Return a listing query from its three parts (see `_PAGE_SQL`)."""
    return _PAGE_SQL.format(total=total, ids=ids, row=row)


@dataclass(frozen=True, slots=True)
class Slice:
    """One page of a listing: its items as a JSON array, the total, and what follows."""

    items: str
    total: int
    last_id: int | None
    more: bool


EMPTY = Slice("[]", 0, None, more=False)


def slice_of(record: Any | None) -> Slice:
    """Build a slice from the one record of a page query (None: the listing is empty)."""
    if record is None:
        return EMPTY
    return Slice(record["items"], int(record["total"]), record["last_id"], bool(record["more"]))

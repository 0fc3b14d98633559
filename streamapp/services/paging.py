"""What a listing query returns: one slice of rows in id order, and the listing's total."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

NEWEST = 2**31 - 1  # above every id: where the first page starts


@dataclass(frozen=True, slots=True)
class Slice:
    """One page of a listing: its rows, the listing's total, and whether more rows follow."""

    rows: list[dict[str, Any]]
    total: int
    more: bool

    @property
    def last_id(self) -> int | None:
        return int(self.rows[-1]["id"]) if self.rows else None


def slice_of(records: Sequence[Any], size: int) -> Slice:
    """Build a slice from the records of a page query.

    The query asks for `size + 1` rows (one more tells whether another page follows) and
    answers its `total` on every record; with no rows, on one record whose `id` is null.
    """
    rows = [dict(record) for record in records if record["id"] is not None]
    for row in rows:
        del row["total"]
    total = int(records[0]["total"]) if records else 0
    return Slice(rows[:size], total, more=len(rows) > size)

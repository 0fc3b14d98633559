"""The delivery contract: at-least-once processing of `new_applications`, in one place.

- **What is acked.** A record is acked as processed only once its batch's effects are
  committed in PostgreSQL and the batch's counts are written to the tables
  (`Delivery.done`, then `Delivery.write_tables`). Anything else the stream lets go of (a
  record skipped at a rebalance, a batch cut short by a stop, a rebalance or an error) is
  released: never committable, so it is consumed again.
- **When.** A batch's counts are written, and its records acked, at most `WRITE_INTERVAL`
  seconds after its effects committed; at once when a rebalance or the stop begins.
- **What a commit may cover.** Only a run of acked offsets that starts exactly where the
  partition's last commit (or its first offset) left off: never past a record not acked,
  and never past offsets a fetch jumped over.
- **At a rebalance.** Faust waits for every record in hand to be acked or released; held
  counts are written at once; records fetched for partitions no longer read are put back; a
  partition whose commits stay stuck behind records nobody holds is read again from its
  commit base.

Redelivered records change nothing (the batch statement moves only rows still `new`, and the
tables take the counts stored in PostgreSQL), so at-least-once delivery is exactly-once in
effect. Everything here that reaches into Faust, mode or aiokafka internals is listed in
`internals.RELIED_ON`, which a test checks against the installed versions.

The agent talks to `Delivery` only: `take` batches, mark each `done` (or `release` it),
`write_tables`, and `stop`.
"""

from streamapp.stream.delivery.acks import WRITE_INTERVAL, Delivery
from streamapp.stream.delivery.transport import Transport

__all__ = ["WRITE_INTERVAL", "Delivery", "Transport"]

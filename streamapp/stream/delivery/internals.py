"""Every private (or undocumented) Faust, mode and aiokafka name the delivery contract
overrides or uses, with the loss path it guards.

An upgrade that renames one of them would not fail: an override of a renamed method is just
never called, and the guarantee is gone in silence. `tests/stream/delivery/test_internals.py`
checks each entry against the installed versions (that it exists, with these parameters), so
such an upgrade fails CI with a message naming the name and what it guards.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Guard(Enum):
    """What breaks if a relied-on name changes."""

    ACKS = "loss path 1: an ack is taken only for a record declared done"
    COMMIT_BASE = "loss path 2: a commit starts exactly where the last one left off"
    NO_GAPS = "loss path 3: offsets a fetch jumped over never become committable"
    STUCK = "loss path 4: a partition stuck behind records nobody holds is read again"
    STALE_FETCH = "loss path 5: a fetch's records of unwanted partitions are put back"
    DELIVERY = "the fetcher's direct delivery while the flow runs (drain rate)"
    BATCHES = "batches gathered in the background, released uncommitted at the stop"
    PRODUCER = "an acked record is on every in-sync replica, and never written twice"
    TRANSPORT = "the app uses this package's transport (every guard above)"
    PARTITIONS = "a user's table rows live in the partition of the user's records"
    ROUTE = "a table view routed before its changelog's metadata is known answers 503"
    START = "a worker starts its tables without Faust's one-second wait"
    FETCH_WAIT = "a fetch of partitions read to their end does not hold back the others (drain)"


@dataclass(frozen=True)
class Internal:
    """A name in `owner` (a dotted path to a class or module) that the contract relies on.

    `parameters` are the names a method must take, in order (None: not a method, or not
    checked); `overridden` says the contract overrides it rather than only calling it;
    `instance` says it is set per instance (checked on a live object, not on the class).
    """

    owner: str
    name: str
    guards: Guard
    parameters: tuple[str, ...] | None = None
    overridden: bool = False
    instance: bool = False


_CONSUMER = "faust.transport.consumer.Consumer"
_DRIVER = "faust.transport.drivers.aiokafka"

RELIED_ON: tuple[Internal, ...] = (
    # Consumer.ack and its bookkeeping.
    Internal(_CONSUMER, "ack", Guard.ACKS, ("self", "message"), overridden=True),
    Internal(_CONSUMER, "_unacked_messages", Guard.ACKS, instance=True),
    Internal(_CONSUMER, "_waiting_for_ack", Guard.ACKS),
    Internal("faust.types.tuples", "ack_lock", Guard.ACKS),
    Internal("faust.types.tuples.Message", "acked", Guard.ACKS),
    Internal("mode.utils.futures", "notify", Guard.ACKS, ("fut", "result")),
    # Where commits start.
    Internal(_CONSUMER, "_new_offset", Guard.COMMIT_BASE, ("self", "tp"), overridden=True),
    Internal(_CONSUMER, "_committed_offset", Guard.COMMIT_BASE, instance=True),
    Internal(_CONSUMER, "_acked", Guard.COMMIT_BASE, instance=True),
    Internal(
        _CONSUMER,
        "_add_gap",
        Guard.NO_GAPS,
        ("self", "tp", "offset_from", "offset_to"),
        overridden=True,
    ),
    # Called by the fetch loop: the loop itself must still call both as it did.
    Internal(_CONSUMER, "_drain_messages", Guard.NO_GAPS, ("self", "fetcher")),
    # The stuck-partition re-read.
    Internal(_CONSUMER, "flow_active", Guard.STUCK),
    Internal(_CONSUMER, "earliest_offsets", Guard.STUCK, ("self", "partitions")),
    Internal(_CONSUMER, "position", Guard.STUCK, ("self", "tp")),
    Internal(_CONSUMER, "seek", Guard.STUCK, ("self", "partition", "offset")),
    Internal("faust.transport.conductor.Conductor", "acks_enabled_for", Guard.STUCK),
    # The fetch that gives back what it took for unwanted partitions.
    Internal(f"{_DRIVER}.Consumer", "_new_consumer_thread", Guard.STALE_FETCH, ("self",), True),
    Internal(
        f"{_DRIVER}.AIOKafkaConsumerThread",
        "_fetch_records",
        Guard.STALE_FETCH,
        ("self", "consumer", "active_partitions", "timeout", "max_records"),
        overridden=True,
    ),
    Internal(_CONSUMER, "_buffered_partitions", Guard.STALE_FETCH, instance=True),
    # The fetch's wait for new records; the worker's consumer is built by Faust, its wait set
    # on aiokafka's (its attribute is checked by the fetch test's timing).
    Internal(
        f"{_DRIVER}.AIOKafkaConsumerThread",
        "_create_worker_consumer",
        Guard.FETCH_WAIT,
        ("self", "transport"),
        overridden=True,
    ),
    # Delivering a message straight to the streams.
    Internal(
        "mode.services.Service", "wait_first", Guard.DELIVERY, ("self", "coros", "timeout"), True
    ),
    Internal("mode.services", "WaitResults", Guard.DELIVERY),
    Internal(_CONSUMER, "suspend_flow", Guard.DELIVERY, instance=True),
    # Streams take buffered events without an await each (opt-in since faust-streaming 0.15).
    Internal("faust.types.settings.settings.Settings", "cython_optimizations", Guard.DELIVERY),
    # The batches generator.
    Internal(
        "faust.streams.Stream", "_enable_passive", Guard.BATCHES, ("self", "channel", "declare")
    ),
    Internal("faust.streams.Stream", "_processors", Guard.BATCHES, instance=True),
    Internal("faust.streams.Stream", "current_event", Guard.BATCHES, instance=True),
    Internal("faust.channels.Channel", "queue", Guard.BATCHES),
    # The producer, the transport, the tables.
    Internal(f"{_DRIVER}.Producer", "_settings_extra", Guard.PRODUCER, ("self",), overridden=True),
    Internal(f"{_DRIVER}.Producer", "key_partition", Guard.ROUTE, ("self", "topic", "key"), True),
    Internal(f"{_DRIVER}.Producer", "_ensure_producer", Guard.ROUTE, ("self",)),
    Internal(f"{_DRIVER}.Producer", "on_start", Guard.PRODUCER, ("self",), overridden=True),
    Internal("faust.app.base.App", "_new_transport", Guard.TRANSPORT, ("self",), overridden=True),
    Internal("faust.tables.manager.TableManager", "on_start", Guard.START, ("self",), True),
    Internal("faust.tables.manager.TableManager", "_update_channels", Guard.START, ("self",)),
    Internal(
        "faust.tables.base.Collection",
        "partition_for_key",
        Guard.PARTITIONS,
        ("self", "key"),
        overridden=True,
    ),
)

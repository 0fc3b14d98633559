"""The workers' stream tables (Faust), changelogged to Kafka and served by the web views."""

from __future__ import annotations

from streamapp.stream.app import app

# Processed applications per user. Keys are bytes because bytes keys are serialized raw (a str
# key would become JSON and hash to another partition than the user's records). With
# use_partitioner each changelog write goes to its key's partition, so a user's count lives in
# the same partition number as the user's records, whichever partitions a batch spans, and
# table_route finds the worker that owns it.
applications_per_user = app.Table(
    "applications_per_user",
    key_type=bytes,
    value_type=int,
    default=int,
    use_partitioner=True,
    help="Processed applications per user",
)

"""The long-running processes' garbage-collector settings."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from streamapp import collector


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_collector")
def test_the_start_is_kept_out_of_later_collections_and_the_young_collected_less_often() -> None:
    gc.unfreeze()
    started = object.__new__(type("Started", (), {}))  # a tracked object made at the start

    collector.settle_after_start()

    assert gc.get_freeze_count() > 0
    assert not gc.is_tracked(started) or started not in gc.get_objects()
    assert gc.get_threshold()[0] == collector.YOUNG_THRESHOLD

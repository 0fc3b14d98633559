"""The Faust, mode and aiokafka internals the delivery contract relies on are all there, as
the contract expects them, on the installed versions (no broker: nothing is started).

A failure names the attribute and the loss path it guards: an upgrade renamed or reshaped
it, and the override that guarded that path would now never be called.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import faust
import pytest

from streamapp.stream.delivery.internals import RELIED_ON, Internal

MISSING = object()
VERSIONS = ", ".join(
    f"{name} {version(name)}" for name in ("faust-streaming", "mode-streaming", "aiokafka")
)


def resolve(path: str) -> Any:
    """The module or class a dotted path names."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            found = getattr(found, name)
        return found
    raise ImportError(path)


@pytest.fixture(scope="module")
def live() -> dict[str, Any]:
    """Objects built as a worker builds them, for the attributes set per instance."""
    app = faust.App("delivery-contract", broker="kafka://127.0.0.1:9", store="memory://")
    consumer = app.consumer
    return {
        "faust.transport.consumer.Consumer": consumer,
        "faust.streams.Stream": app.stream(app.channel()),
    }


def failure(internal: Internal, problem: str) -> str:
    return (
        f"{internal.owner}.{internal.name} {problem} in the installed {VERSIONS}: "
        f"{internal.guards.value} no longer holds. See streamapp/stream/delivery/internals.py."
    )


@pytest.mark.parametrize("internal", RELIED_ON, ids=lambda i: f"{i.owner}.{i.name}")
def test_relied_on_internal_is_there(internal: Internal, live: dict[str, Any]) -> None:
    owner = resolve(internal.owner)
    if internal.instance:
        target = live[internal.owner]
        found = getattr(target, internal.name, MISSING)
    else:
        found = inspect.getattr_static(owner, internal.name, MISSING)
    assert found is not MISSING, failure(internal, "is gone")
    if internal.parameters is not None:
        function = found.__func__ if isinstance(found, staticmethod | classmethod) else found
        parameters = tuple(inspect.signature(function).parameters)
        assert parameters == internal.parameters, failure(
            internal, f"now takes {parameters}, not {internal.parameters}"
        )


def test_the_fetch_loop_still_calls_what_the_guards_replace() -> None:
    """`_add_gap` and `wait_first` are overridden; the loop must still call them so."""
    internal = next(i for i in RELIED_ON if i.name == "_drain_messages")
    source = inspect.getsource(resolve(internal.owner)._drain_messages)
    for call in ("self._add_gap(tp,", "await self.wait_first(", "self.suspend_flow.wait()"):
        assert call in source, failure(internal, f"no longer calls {call!r}")


# Walks every module of streamapp in a child process: importing the Faust app configures it
# from the settings, and a throw-away configuration must not leak into the other tests.
_WALK = """
import importlib, inspect, json, pkgutil, streamapp
found = []
for info in pkgutil.walk_packages(streamapp.__path__, "streamapp."):
    if info.name.startswith(("streamapp.dev.", "streamapp.__main__")):
        continue
    module = importlib.import_module(info.name)
    for cls in vars(module).values():
        if not (inspect.isclass(cls) and cls.__module__ == module.__name__):
            continue
        for name, value in vars(cls).items():
            if getattr(getattr(value, "fget", value), "__override__", False):
                based = any(name in vars(base) for base in cls.__mro__[1:])
                found.append([cls.__module__, cls.__qualname__, name, based])
print(json.dumps(found))
"""


@dataclass(frozen=True)
class Override:
    module: str
    cls: str
    name: str
    overrides_a_base: bool


@pytest.fixture(scope="module")
def overrides() -> list[Override]:
    """Every method of streamapp marked @override (nothing connects)."""
    env = {
        **os.environ,
        "DATABASE_URL": "postgresql://contract:contract@127.0.0.1:9/contract",
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
    }
    walk = subprocess.run(
        [sys.executable, "-c", _WALK], env=env, capture_output=True, text=True, check=True
    )
    return [Override(*row) for row in json.loads(walk.stdout)]


def test_every_override_still_overrides_something(overrides: list[Override]) -> None:
    """A method marked @override whose base lost the name would silently never be called."""
    orphans = [f"{o.module}.{o.cls}.{o.name}" for o in overrides if not o.overrides_a_base]
    assert not orphans, f"overriding nothing in the installed {VERSIONS}: {orphans}"


def _private(name: str) -> bool:
    """A private name (a protocol's dunder, such as __aenter__, is public)."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_every_override_of_the_delivery_or_of_a_private_name_is_listed(
    overrides: list[Override],
) -> None:
    """The list of relied-on names stays complete as the code changes."""
    listed = {i.name for i in RELIED_ON if i.overridden}
    delivery = [
        o for o in overrides if o.module.startswith("streamapp.stream.delivery") or _private(o.name)
    ]
    assert delivery, "no override found: the walk over streamapp is broken"
    unlisted = [f"{o.cls}.{o.name}" for o in delivery if o.name not in listed]
    assert not unlisted, f"overridden but not in RELIED_ON: {unlisted}"

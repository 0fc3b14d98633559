"""The API's listener takes every connection waiting at each poll, on uvloop as on asyncio,
and pauses (rather than spins or stops) when the process is out of file descriptors."""

from __future__ import annotations

import asyncio
import resource
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable

import pytest
import uvloop
from typing_extensions import override

from streamapp.web.api.listener import RETRY_SECONDS, BatchListener, CoalescedWrites, bind

WAITING = 200


class Recorder(asyncio.Protocol):
    def __init__(self, made: list[asyncio.BaseTransport]) -> None:
        self._made = made

    @override
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._made.append(transport)


async def taken_within_a_few_turns(waiting: int) -> int:
    """Connections made on the protocol after a few turns of the loop, `waiting` of them
    queued before the listener started."""
    (listening,) = bind("127.0.0.1", 0)
    listening.listen(waiting)
    clients = [socket.create_connection(listening.getsockname()) for _ in range(waiting)]
    made: list[asyncio.BaseTransport] = []
    listener = BatchListener(listening, lambda: Recorder(made), batch=waiting)
    try:
        for _ in range(10):
            await asyncio.sleep(0)
        return len(made)
    finally:
        listener.close()
        for transport in made:
            transport.close()
        for client in clients:
            client.close()


@pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])
def test_every_waiting_connection_is_taken_at_once(run: Callable[..., int]) -> None:
    # uvloop's own server takes one connection per poll: 10 turns would serve about 10.
    assert run(taken_within_a_few_turns(WAITING)) == WAITING


def test_bind_refuses_a_port_in_use() -> None:
    (taken,) = bind("127.0.0.1", 0)
    taken.listen(1)
    try:
        with pytest.raises(OSError, match="in use"):
            bind("127.0.0.1", taken.getsockname()[1])
    finally:
        taken.close()


def test_a_bound_socket_refuses_connections_until_it_listens() -> None:
    (bound,) = bind("127.0.0.1", 0)
    try:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(bound.getsockname(), timeout=5)
    finally:
        bound.close()


# Runs in a process of its own: it lowers the open-file limit.
_OUT_OF_FILES = """
import asyncio, resource, socket, sys, time
import uvloop
from streamapp.web.api.listener import BatchListener, bind

async def main():
    (listening,) = bind("127.0.0.1", 0)
    listening.listen(16)
    made = []
    class Recorder(asyncio.Protocol):
        def connection_made(self, transport):
            made.append(transport)
    clients = [socket.create_connection(listening.getsockname()) for _ in range(4)]
    # Room for nothing more: accept() fails with EMFILE.
    spare = []
    try:
        while True:
            spare.append(open("/dev/null"))
    except OSError:
        pass
    listener = BatchListener(listening, Recorder, batch=16)
    await asyncio.sleep(0.2)
    during = len(made)
    for f in spare:
        f.close()
    started = time.monotonic()
    while len(made) < 4 and time.monotonic() - started < 5:
        await asyncio.sleep(0.05)
    print(during, len(made), round(time.monotonic() - started, 2))
    listener.close()

resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
uvloop.run(main())
"""


def test_out_of_file_descriptors_pauses_accepting_then_takes_the_waiting() -> None:
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[1] >= 256
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_OUT_OF_FILES)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    during, after, waited = done.stdout.split()
    assert int(during) == 0
    assert int(after) == 4
    assert float(waited) <= RETRY_SECONDS + 0.5
    assert "cannot accept connections for now" in done.stderr


class Recording(asyncio.Transport):
    """What a transport was asked to do, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, bytes]] = []
        self.closing = False

    @override
    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.calls.append(("write", bytes(data)))

    @override
    def close(self) -> None:
        self.calls.append(("close", b""))
        self.closing = True

    @override
    def abort(self) -> None:
        self.calls.append(("abort", b""))
        self.closing = True

    @override
    def is_closing(self) -> bool:
        return self.closing


async def test_an_answers_writes_in_one_turn_go_out_as_one() -> None:
    sent = Recording()
    writes = CoalescedWrites(sent, asyncio.get_running_loop())

    writes.write(b"HTTP/1.1 201 Created\r\n\r\n")
    writes.write(b'{"id": 1}')
    assert sent.calls == []  # not before the turn ends
    await asyncio.sleep(0)
    writes.write(b"next")
    await asyncio.sleep(0)

    assert sent.calls == [
        ("write", b'HTTP/1.1 201 Created\r\n\r\n{"id": 1}'),
        ("write", b"next"),  # a later turn's write (a stream's next event) is not held back
    ]


async def test_closing_sends_what_was_written_first_and_aborting_drops_it() -> None:
    closed, aborted = Recording(), Recording()
    loop = asyncio.get_running_loop()
    for transport, end in ((closed, "close"), (aborted, "abort")):
        writes = CoalescedWrites(transport, loop)
        writes.write(b"413 and Connection: close")
        getattr(writes, end)()
    await asyncio.sleep(0)

    assert closed.calls == [("write", b"413 and Connection: close"), ("close", b"")]
    assert aborted.calls == [("abort", b"")]

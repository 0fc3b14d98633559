"""Taking new connections in batches, and sending each answer in one piece.

uvloop (libuv since 1.45) accepts one connection each time the listening socket polls
readable, and under load each poll is one turn of an event loop busy with thousands of
connections. In a burst of 5,000 connections about 1,500 were still in the kernel's accept
queue after 10 s, a few accepted each second: their clients' first requests waited up to 10 s
while the API answered everybody else within one. Here every connection waiting (up to the
backlog) is taken at each poll, as asyncio's own loop does, and handed to the loop as an
accepted socket: every client gets its turn, and the API's overload answers (503 at once)
reach them all.

Each connection's writes in one turn of the loop go out together (CoalescedWrites): uvicorn
writes an answer's head and body apart, and uvloop sends each at once, two send() calls per
answer. A/B, six alternating rounds at 32 connections: API CPU per POST 410 -> 389 us, per
page 1 393 -> 355 us, page 1's p99 58-128 ms -> 18-50 ms.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable
from typing import Any

from typing_extensions import override

logger = logging.getLogger(__name__)

# accept() failing for these is the process or the host out of a resource: try again later.
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
# How long accepting pauses when out of resources (asyncio's own pause).
RETRY_SECONDS = 1.0


def bind(host: str, port: int) -> list[socket.socket]:
    """A TCP socket bound to each address `host` names (not listening yet: a connection
    made before the API is ready is refused, not left waiting)."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    bound: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(found):
            sock = socket.socket(family, kind, proto)
            bound.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:  # as asyncio: IPv4 gets a socket of its own
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
    except OSError:
        for sock in bound:
            sock.close()
        raise
    return bound


class BatchListener:
    """Accepts the connections waiting on a listening socket, up to `batch` at each poll,
    and serves each with a protocol from `protocol_factory`."""

    def __init__(
        self,
        sock: socket.socket,
        protocol_factory: Callable[[], asyncio.Protocol],
        batch: int,
    ) -> None:
        self._sock = sock
        self._protocol_factory = protocol_factory
        self._batch = batch
        self._loop = asyncio.get_running_loop()
        self._connecting: set[asyncio.Task[object]] = set()
        self._resume: asyncio.TimerHandle | None = None
        sock.setblocking(False)
        self._loop.add_reader(sock.fileno(), self._accept)

    def close(self) -> None:
        """Stop taking connections and close the socket (those taken are served on)."""
        if self._resume is not None:
            self._resume.cancel()
        if self._sock.fileno() != -1:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()

    def _accept(self) -> None:
        for _ in range(self._batch):
            try:
                connection, _address = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return  # none left
            except ConnectionAbortedError:
                continue  # the client gave up while it waited
            except OSError as exc:
                self._pause(exc)
                return
            connection.setblocking(False)
            self._serve(connection)

    def _serve(self, connection: socket.socket) -> None:
        task = self._loop.create_task(
            self._loop.connect_accepted_socket(self._new_protocol, connection)
        )
        self._connecting.add(task)
        task.add_done_callback(self._connected)

    def _new_protocol(self) -> asyncio.Protocol:
        return WithCoalescedWrites(self._protocol_factory())

    def _connected(self, task: asyncio.Task[object]) -> None:
        self._connecting.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            logger.debug("a connection closed before it was served: %s", exc)

    def _pause(self, exc: OSError) -> None:
        if exc.errno not in _OUT_OF_RESOURCES:
            logger.warning("accepting a connection failed: %s", exc)
            return
        logger.error("cannot accept connections for now (%s); retrying in %gs", exc, RETRY_SECONDS)
        self._loop.remove_reader(self._sock.fileno())
        self._resume = self._loop.call_later(RETRY_SECONDS, self._listen_again)

    def _listen_again(self) -> None:
        self._resume = None
        if self._sock.fileno() != -1:
            self._loop.add_reader(self._sock.fileno(), self._accept)


class CoalescedWrites(asyncio.Transport):
    """A transport whose writes made in one turn of the event loop go out in one system
    call. uvicorn writes an answer's head and its body separately, and uvloop sends each at
    once: two send() calls per answer."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes | bytearray | memoryview] = []

    @override
    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    @override
    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    @override
    def close(self) -> None:
        self._flush()
        self._transport.close()

    @override
    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    @override
    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    @override
    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    @override
    def is_closing(self) -> bool:
        return self._transport.is_closing()

    @override
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    @override
    def pause_reading(self) -> None:
        self._transport.pause_reading()

    @override
    def resume_reading(self) -> None:
        self._transport.resume_reading()

    @override
    def is_reading(self) -> bool:
        return self._transport.is_reading()

    @override
    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    @override
    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    @override
    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    @override
    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)


class WithCoalescedWrites(asyncio.Protocol):
    """Serves a connection with `protocol`, handing it a CoalescedWrites transport."""

    def __init__(self, protocol: asyncio.Protocol) -> None:
        self._protocol = protocol
        self.data_received = protocol.data_received  # type: ignore[method-assign]
        self.eof_received = protocol.eof_received  # type: ignore[method-assign]
        self.connection_lost = protocol.connection_lost  # type: ignore[method-assign]
        self.pause_writing = protocol.pause_writing  # type: ignore[method-assign]
        self.resume_writing = protocol.resume_writing  # type: ignore[method-assign]

    @override
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport instances, but have its methods.
        writes = CoalescedWrites(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
        self._protocol.connection_made(writes)

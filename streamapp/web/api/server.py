"""Serving the API with uvicorn, and stopping it without dropping what was accepted.

On SIGTERM (or Ctrl-C) the API first answers `/readyz` with 503 for `API_DRAIN_SECONDS` while
it goes on serving, so a load balancer stops sending it requests; then uvicorn stops taking
connections and lets the requests in flight finish (at most `API_SHUTDOWN_TIMEOUT`); then the
lifespan flushes the outbox's queue. An event not sent by then stays in the outbox, and the
relay of any API process (this one, restarted) sends it. A second signal skips the wait.
`streamapp api --workers N` runs N such processes on one socket (ApiProcesses).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import resource
import signal
import socket
import threading
import time
from multiprocessing.context import SpawnProcess
from types import FrameType

import uvicorn
from fastapi import FastAPI
from typing_extensions import override

from streamapp.config import Settings
from streamapp.web.api.app import create_api
from streamapp.web.api.listener import BatchListener, bind

logger = logging.getLogger(__name__)

# uvicorn's exit code for a start that failed.
STARTUP_FAILURE = 3
# The open-file limit raise_open_file_limit asks for when the hard limit is unlimited.
_MOST_OPEN_FILES = 65_536


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, api: FastAPI, drain_seconds: float) -> None:
        super().__init__(config)
        self._api = api
        self._drain_seconds = drain_seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listeners: list[BatchListener] = []

    @override
    async def serve(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)  # type: ignore[arg-type]

    @override
    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start the app, then take connections on `sockets` (bound, not yet listening), or
        on host:port, in batches (see streamapp.web.api.listener)."""
        bound = self._bind() if sockets is None else sockets
        await super().startup(sockets=[])  # the lifespan only: no listener of uvicorn's
        for sock in bound:
            sock.listen(self.config.backlog)
            self._listeners.append(BatchListener(sock, self._new_protocol, self.config.backlog))
        if sockets is None:
            self._log_started_message(bound)

    def _bind(self) -> list[socket.socket]:
        """Bound before the app starts: a port in use fails the start at once."""
        try:
            return bind(self.config.host, self.config.port)
        except OSError as exc:
            logger.error("cannot listen on %s:%d: %s", self.config.host, self.config.port, exc)
            raise SystemExit(STARTUP_FAILURE) from None

    def _new_protocol(self) -> asyncio.Protocol:
        protocol: asyncio.Protocol = self.config.http_protocol_class(  # type: ignore[call-arg]
            config=self.config, server_state=self.server_state, app_state=self.lifespan.state
        )
        return protocol

    @override
    async def shutdown(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
        for listener in self._listeners:
            listener.close()
        # Event streams never end by themselves: end them, or the wait for open connections
        # would last the whole shutdown timeout.
        dashboard = getattr(self._api.state, "dashboard", None)
        if dashboard is not None:
            dashboard.close_pages()
        await super().shutdown(sockets)  # type: ignore[arg-type]

    @override
    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        stop = super().handle_exit
        if self._api.state.draining or not self._drain_seconds or self._loop is None:
            stop(sig, frame)
            return
        self._api.state.draining = True
        logger.info(
            "stopping: /readyz answers 503 for %gs, then requests in flight finish",
            self._drain_seconds,
        )
        self._loop.call_soon_threadsafe(
            self._loop.call_later, self._drain_seconds, stop, sig, frame
        )


def raise_open_file_limit() -> int:
    """Lift the soft limit of open files to the hard one and return it: each connection is a
    file, and a soft limit of 1,024 (a common default) would refuse a burst of clients at
    accept() instead of letting the API answer them, 503 included."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = _MOST_OPEN_FILES if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as exc:
            logger.warning("could not raise the open-file limit from %d: %s", soft, exc)
            return soft
        return wanted
    return soft


def serve(settings: Settings, host: str, port: int, processes: int = 1) -> None:
    """Run the API until a signal stops it (see the module's doc); with `processes` > 1, that
    many processes on the same port (see ApiProcesses)."""
    raise_open_file_limit()
    if processes == 1:
        _server(settings, host, port).run()
    else:
        ApiProcesses(processes, host, port).run()


def _config(settings: Settings, api: FastAPI, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        api,
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        log_config=None,  # keep the logging configured by the command
        proxy_headers=True,
        timeout_graceful_shutdown=settings.api_shutdown_timeout,
    )


def _server(settings: Settings, host: str, port: int) -> DrainingServer:
    api = create_api(settings)
    return DrainingServer(_config(settings, api, host, port), api, settings.api_drain_seconds)


class ApiProcesses:
    """`streamapp api --workers N`: N API processes on one port, for as many cores. Each
    listens on a socket of its own (SO_REUSEPORT), so the kernel spreads the connections
    evenly. Each has its own pool, outbox relay and LISTEN connection (the relays share the
    outbox through SKIP LOCKED).

    A signal to this process goes to each API process once: they drain and stop as one API
    does, and a second signal makes them skip the wait. An API process that dies is replaced,
    unless it died at its start (a bad setting, the port taken): then all stop. The API
    processes are in a process group of their own (a terminal's Ctrl-C reaches them only
    through here), and stop when this process is gone.
    """

    def __init__(self, count: int, host: str, port: int) -> None:
        self._count = count
        self._address = (host, port)
        self._stopping = threading.Event()
        self._forwarded: set[int] = set()
        self._children: list[tuple[SpawnProcess, float]] = []

    def run(self) -> None:
        # Bound, never listening: it takes no connection, and keeps the port ours.
        reserved = reuse_port_socket(*self._address)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._forward)
        try:
            self._children = [self._start() for _ in range(self._count)]
            logger.info("%d API processes on %s:%d", self._count, *self._address)
            while not self._stopping.wait(0.5):
                self._replace_the_dead()
            for child, _ in self._children:
                child.join()
        finally:
            reserved.close()
        # uvicorn ends a process stopped by a signal with that signal, once it has drained.
        clean = {0, *(-sig for sig in self._forwarded)}
        if any(child.exitcode not in clean for child, _ in self._children):
            raise SystemExit(1)

    def _replace_the_dead(self) -> None:
        for index, (child, started) in enumerate(self._children):
            if child.is_alive():
                continue
            exited_by_itself = child.exitcode is not None and child.exitcode > 0
            if exited_by_itself and time.monotonic() - started < _START_GRACE:
                logger.error("API process %s failed at its start; stopping", child.pid)
                self._forward(signal.SIGTERM, None)
                return
            logger.warning(
                "API process %s exited (code %s); starting another", *(child.pid, child.exitcode)
            )
            self._children[index] = self._start()

    def _start(self) -> tuple[SpawnProcess, float]:
        child = multiprocessing.get_context("spawn").Process(
            target=_serve_in_child, args=(*self._address, os.getpid()), name="streamapp-api"
        )
        child.start()
        return child, time.monotonic()

    def _forward(self, sig: int, _: FrameType | None) -> None:
        self._stopping.set()
        self._forwarded.add(sig)
        for child, _started in self._children:
            if child.is_alive() and child.pid is not None:
                os.kill(child.pid, sig)


# An API process that exits with an error sooner than this after its start failed to start
# (one killed by a signal is replaced whenever it dies).
_START_GRACE = 10.0


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port with SO_REUSEPORT (not yet listening)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    bound = socket.socket(family, kind, proto)
    bound.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    bound.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    bound.bind(address)
    return bound


def _serve_in_child(host: str, port: int, parent: int) -> None:
    """One of ApiProcesses' processes: the API on a listening socket of its own."""
    from streamapp.config import get_settings_or_exit
    from streamapp.logs import configure_logging

    os.setpgrp()  # signals come from the parent, once
    settings = get_settings_or_exit()
    configure_logging(settings.log_level, settings.log_format)
    threading.Thread(target=_stop_with, args=(parent,), daemon=True).start()
    # Listening once the app has started (DrainingServer.startup): until then the kernel
    # gives the port's new connections to the other processes.
    _server(settings, host, port).run(sockets=[reuse_port_socket(host, port)])


def _stop_with(parent: int) -> None:
    """Stop (as on SIGTERM) once the parent process is gone."""
    while os.getppid() == parent:
        time.sleep(1)
    os.kill(os.getpid(), signal.SIGTERM)

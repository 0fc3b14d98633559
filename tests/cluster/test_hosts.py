"""The hosts the cluster tests run on: a cut link hangs instead of refusing, a heal brings it
back, and a selective cut drops only what it names."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tools.stack.hosts import Host, Network, hosts_unavailable

PORT = 7000


@pytest.fixture(scope="module")
def network() -> Iterator[Network]:
    reason = hosts_unavailable()
    if reason:
        pytest.skip(f"makes hosts of its own: {reason}")
    with Network(subnet="10.77.1") as hosts:
        yield hosts


@pytest.fixture(scope="module")
def server(network: Network) -> Host:
    """A host whose port PORT accepts connections."""
    host = network.add("server")
    with host.inside():
        listener = socket.create_server((host.address, PORT))
    threading.Thread(target=_accept_forever, args=(listener,), daemon=True).start()
    return host


def _accept_forever(listener: socket.socket) -> None:
    while True:
        connection, _ = listener.accept()
        connection.close()


def connect(client: Host, server: Host, timeout: float = 1.0) -> str:
    """What a connection from `client` to the server gets: connected, refused or timed out."""
    with client.inside():
        sock = socket.socket()
    try:
        sock.settimeout(timeout)
        sock.connect((server.address, PORT))
        return "connected"
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "timed out"
    finally:
        sock.close()


def test_a_cut_link_hangs_and_a_healed_one_connects(network: Network, server: Host) -> None:
    client = network.add("client-a")
    assert connect(client, server) == "connected"

    server.cut()
    started = time.monotonic()
    outcome = connect(client, server, timeout=1.0)
    took = time.monotonic() - started
    server.heal()

    assert outcome == "timed out"  # on loopback it would have been refused at once
    assert took >= 1.0
    assert connect(client, server) == "connected"


def test_a_block_drops_only_the_named_peers(network: Network, server: Host) -> None:
    blocked, other = network.add("client-b"), network.add("client-c")
    blocked.block(server)
    try:
        assert connect(blocked, server) == "timed out"
        assert connect(other, server) == "connected"
    finally:
        blocked.unblock(server)
    assert connect(blocked, server) == "connected"


def test_a_closed_port_still_refuses(network: Network, server: Host) -> None:
    client = network.add("client-d")
    with client.inside():
        sock = socket.socket()
    try:
        sock.settimeout(1.0)
        with pytest.raises(ConnectionRefusedError):
            sock.connect((server.address, PORT + 1))
    finally:
        sock.close()

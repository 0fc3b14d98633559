"""Hosts of our own on one machine: Linux network namespaces joined by a bridge.

Each host is a network namespace with one interface, `eth0`, plugged into a bridge that sits
in a namespace of its own (the switch), so no address is given outside namespaces made here.
A host's link is cut by setting its bridge port down: its packets are dropped and its peers
hang, as on a real network, instead of being refused at once as on loopback.

The machine itself gets no address on the network. Its routing table only sends the network's
subnet into a blackhole while the network exists, so a process started on the machine by
mistake fails at once instead of sending the hosts' traffic anywhere else.

A thread moves into a host with `Host.inside()`: the sockets it opens and the processes it
starts from then on belong to that host. `Network.enter(host)` moves the calling thread for
good (until the network is removed): the test process lives on a client host of its own,
and the threads it starts afterwards are born there too.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import logging
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
PREFIX = "streamapp"
_OURS = re.compile(rf"{PREFIX}-(\d+)-")
_NETWORKS = itertools.count(1)  # networks made by this process


class HostsUnavailable(RuntimeError):
    """Network namespaces cannot be made here; the message says why."""


def hosts_unavailable() -> str | None:
    """Why hosts cannot be made on this machine, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root (run as root, as CI does)"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (Debian: iproute2, iptables)"
    probe = f"{PREFIX}-{os.getpid()}-probe"
    try:
        _ip("netns", "add", probe)
        _ip("netns", "delete", probe)
    except subprocess.CalledProcessError as exc:
        return f"`ip netns add` failed: {exc.stderr.strip()}"
    return None


def _ip(*args: str) -> str:
    result = subprocess.run(["ip", *args], check=True, capture_output=True, text=True)
    return result.stdout


def _setns(fd: int) -> None:
    """Move the calling thread (only it) into the network namespace open as `fd`."""
    if hasattr(os, "setns"):
        os.setns(fd, CLONE_NEWNET)
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


@contextlib.contextmanager
def inside(namespace: str) -> Iterator[None]:
    """Run the calling thread in `namespace`, then put it back where it was."""
    with open("/proc/thread-self/ns/net") as here, open(NETNS_DIR / namespace) as there:
        _setns(there.fileno())
        try:
            yield
        finally:
            _setns(here.fileno())


@dataclass
class Host:
    """One host: a network namespace with `address` on the network's bridge."""

    name: str
    namespace: str
    address: str
    bridge_port: str
    network: Network = field(repr=False)

    def inside(self) -> contextlib.AbstractContextManager[None]:
        """Run this thread on the host: what it connects to and starts is the host's."""
        return inside(self.namespace)

    def run(self, *command: str) -> str:
        """Run a command on the host and return its output (raises when it fails)."""
        result = subprocess.run(
            ["ip", "netns", "exec", self.namespace, *command],
            check=True,
            capture_output=True,
            text=True,
        )
        return result.stdout

    def cut(self) -> None:
        """Pull the host's cable: every packet to or from it is dropped, nothing refused."""
        self.network.switch("link", "set", self.bridge_port, "down")
        logger.info("cut %s (%s)", self.name, self.address)

    def heal(self) -> None:
        self.network.switch("link", "set", self.bridge_port, "up")
        logger.info("healed %s (%s)", self.name, self.address)

    def block(self, *peers: Host) -> None:
        """Drop what this host exchanges with `peers` only (its other links stay up)."""
        for peer in peers:
            self.run("iptables", "-I", "OUTPUT", "-d", peer.address, "-j", "DROP")
            self.run("iptables", "-I", "INPUT", "-s", peer.address, "-j", "DROP")
        logger.info("blocked %s from %s", self.name, ", ".join(p.name for p in peers))

    def unblock(self, *peers: Host) -> None:
        for peer in peers:
            self.run("iptables", "-D", "OUTPUT", "-d", peer.address, "-j", "DROP")
            self.run("iptables", "-D", "INPUT", "-s", peer.address, "-j", "DROP")
        logger.info("unblocked %s from %s", self.name, ", ".join(p.name for p in peers))

    def unblock_all(self) -> None:
        """Take away every cut `block` made."""
        self.run("iptables", "-F")

    def pids(self) -> list[int]:
        return [int(pid) for pid in _ip("netns", "pids", self.namespace).split()]


class Network:
    """A bridge and the hosts on it, all in namespaces named after this process."""

    def __init__(self, subnet: str = "10.77.0") -> None:
        reason = hosts_unavailable()
        if reason:
            raise HostsUnavailable(reason)
        remove_stale_namespaces()
        self.subnet = subnet
        self.tag = f"{PREFIX}-{os.getpid()}-{next(_NETWORKS)}"
        self.switch_namespace = f"{self.tag}-switch"
        self.hosts: dict[str, Host] = {}
        self._home: int | None = None  # the entering thread's namespace, kept open
        _ip("netns", "add", self.switch_namespace)
        self.switch("link", "add", "br0", "type", "bridge")
        self.switch("link", "set", "br0", "up")
        _ip("route", "replace", "blackhole", f"{subnet}.0/24")

    def switch(self, *args: str) -> None:
        _ip("-n", self.switch_namespace, *args)

    def add(self, name: str) -> Host:
        """A new host on the bridge, with the next free address of the subnet."""
        index = len(self.hosts) + 1
        namespace = f"{self.tag}-{name}"
        host = Host(name, namespace, f"{self.subnet}.{10 + index}", f"port{index}", self)
        _ip("netns", "add", namespace)
        self.switch("link", "add", host.bridge_port, "type", "veth", "peer", "eth0")
        self.switch("link", "set", "eth0", "netns", namespace)
        self.switch("link", "set", host.bridge_port, "master", "br0", "up")
        _ip("-n", namespace, "addr", "add", f"{host.address}/24", "dev", "eth0")
        _ip("-n", namespace, "link", "set", "eth0", "up")
        _ip("-n", namespace, "link", "set", "lo", "up")
        self.hosts[name] = host
        return host

    def enter(self, host: Host) -> None:
        """Move the calling thread onto `host` until remove() (threads it starts follow)."""
        if self._home is None:
            self._home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        with open(NETNS_DIR / host.namespace) as there:
            _setns(there.fileno())

    def remove(self) -> None:
        """Kill whatever still runs on the hosts and delete every namespace made here."""
        if self._home is not None:
            _setns(self._home)
            os.close(self._home)
            self._home = None
        for host in self.hosts.values():
            for pid in host.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for namespace in [h.namespace for h in self.hosts.values()] + [self.switch_namespace]:
            with contextlib.suppress(subprocess.CalledProcessError):
                _ip("netns", "delete", namespace)
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("route", "delete", "blackhole", f"{self.subnet}.0/24")
        self.hosts.clear()

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *_: object) -> None:
        self.remove()


def remove_stale_namespaces() -> None:
    """Delete the namespaces of runs whose process is gone (killed before cleaning up)."""
    if not NETNS_DIR.exists():
        return
    for entry in NETNS_DIR.iterdir():
        match = _OURS.match(entry.name)
        if match and not Path(f"/proc/{match.group(1)}").exists():
            for pid in _ip("netns", "pids", entry.name).split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            _ip("netns", "delete", entry.name)
            logger.info("removed the stale namespace %s", entry.name)

"""`make cluster` as a person runs it: it comes up, says where the API and the dashboard are,
serves the dashboard on this machine's loopback, and leaves nothing behind on Ctrl-C.

(Named to run before the other cluster tests, while this thread is still on the machine.)
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tools.stack.hosts import NETNS_DIR, hosts_unavailable
from tools.stack.processes import free_ports, wait_for


def test_make_cluster_serves_the_dashboard_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    reason = hosts_unavailable()
    if reason:
        pytest.skip(f"makes hosts of its own: {reason}")
    port = free_ports(1)
    output = tmp_path / "cluster.out"
    with output.open("wb") as sink:
        command = [sys.executable, "-m", "tools.stack.cluster", "--port", str(port)]
        command += ["--subnet", "10.77.2"]
        # Started with SIGINT ignored, as a script's background job is (and all it starts):
        # Ctrl-C must stop it all the same.
        process = subprocess.Popen(
            command,
            stdout=sink,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )
    try:
        wait_for(
            lambda: "Press Ctrl-C" in output.read_text() or process.poll() is not None,
            timeout=240,
            interval=1.0,
        )
        shown = output.read_text()
        assert process.poll() is None, shown[-3000:]
        namespaces = {entry.name for entry in NETNS_DIR.iterdir() if str(process.pid) in entry.name}
        assert len(namespaces) >= 9, namespaces  # the hosts and the switch
        assert "API             http://10.77.2." in shown
        assert f"dashboard       http://127.0.0.1:{port}/dashboard" in shown

        page = httpx.get(f"http://127.0.0.1:{port}/dashboard", timeout=10)
        filed = httpx.post(
            f"http://127.0.0.1:{port}/applications",
            json={"user_name": "cluster-visitor", "description": "through the forward"},
            timeout=10,
        )
        assert page.status_code == 200
        assert "<html" in page.text.lower()
        assert filed.status_code == 201

        # A client still connected (here the dashboard's event stream, which never ends)
        # must not hold the stop.
        held = socket.create_connection(("127.0.0.1", port), timeout=10)
        held.sendall(b"GET /events HTTP/1.1\r\nHost: cluster\r\n\r\n")
        assert held.recv(12).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=90) == 0, output.read_text()[-3000:]
        held.close()
        assert time.monotonic() - started < 90
        left = {entry.name for entry in NETNS_DIR.iterdir() if str(process.pid) in entry.name}
        assert not left, left
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

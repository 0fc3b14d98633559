"""`streamapp api --workers 2`: two processes answer on one port, a dead one is replaced,
and a signal stops both after their drain, with every accepted application stored."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid

import asyncpg
import httpx
import psutil

from tools.stack.processes import Api, alive, child_env, free_ports, wait_for


def serving(api: Api, clients: int = 20) -> set[int]:
    """The API processes that hold the connections of `clients` clients (each keeps its
    connection open, and the kernel picks a process for each)."""
    sessions = [httpx.Client(base_url=api.url, timeout=10) for _ in range(clients)]
    try:
        for session in sessions:
            session.get("/healthz").raise_for_status()
        return {child.pid for child in children_of(api) if holds_a_connection(child, api.port)}
    finally:
        for session in sessions:
            session.close()


def holds_a_connection(child: psutil.Process, port: int) -> bool:
    try:
        return any(c.laddr.port == port for c in child.net_connections("tcp") if c.raddr)
    except psutil.NoSuchProcess:  # exited since it was listed
        return False


def children_of(api: Api) -> list[psutil.Process]:
    """The live API processes (not multiprocessing's resource tracker)."""
    assert api.process is not None
    found = []
    for child in psutil.Process(api.process.pid).children():
        try:
            if "spawn_main" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:  # a zombie, or reaped since it was listed
            pass
    return found


def post(api: Api, user_name: str, description: str) -> int:
    body = {"user_name": user_name, "description": description}
    return httpx.post(f"{api.url}/applications", json=body, timeout=30).status_code


async def test_two_processes_serve_one_port_and_stop_together(
    service_env: dict[str, str], pg: asyncpg.Pool
) -> None:
    api = Api(child_env(**{**service_env, "API_DRAIN_SECONDS": "1"}), processes=2).start()
    user_name = f"procs-{uuid.uuid4().hex[:8]}"
    try:
        await asyncio.to_thread(api.wait_ready)
        wait_for(lambda: len(children_of(api)) == 2, timeout=30, message="two API processes")
        # Both serve (the second may still be starting).
        wait_for(lambda: len(serving(api)) == 2, timeout=30, message="both API processes serving")

        first = children_of(api)[0]
        first.kill()  # an API process that dies is replaced; the port keeps answering
        wait_for(
            lambda: (
                len(children_of(api)) == 2 and first.pid not in {c.pid for c in children_of(api)}
            ),
            timeout=30,
            message="the dead API process replaced",
        )
        statuses = [await asyncio.to_thread(post, api, user_name, f"#{n}") for n in range(40)]
        assert statuses == [201] * 40

        children = children_of(api)
        assert api.process is not None
        os.kill(api.process.pid, signal.SIGTERM)
        assert api.process.wait(timeout=60) == 0
        assert not any(alive(child) for child in children)
    finally:
        api.stop()
    stored = (
        "SELECT count(*) FROM applications a JOIN users u ON u.id = a.user_id"
        " WHERE u.user_name = $1"
    )
    assert await pg.fetchval(stored, user_name) == 40


def test_a_port_in_use_stops_every_process_with_an_error(service_env: dict[str, str]) -> None:
    port = free_ports(1)
    taken = Api(child_env(**service_env), port=port).start()
    try:
        taken.wait_ready()
        second = Api(child_env(**service_env), port=port, processes=2).start()
        assert second.process is not None
        assert second.process.wait(timeout=60) == 1
    finally:
        taken.stop()

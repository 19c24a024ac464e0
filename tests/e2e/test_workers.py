"""`gateway serve --workers N`: N processes on one port behave as one gateway."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.client import PASSWORD, bearer, login, logout, new_session, register
from tests.servers import HOST, ServerProcess, free_port, gateway_env


def children_of(pid: int) -> list[int]:
    tasks = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in tasks.read_text().split()]


@pytest.fixture
def workers(
    redis_url: str, upstream_demo_url: str, tmp_path: Path
) -> Iterator[tuple[str, ServerProcess, dict[str, str]]]:
    """A gateway with two workers on a redis-server."""
    port = free_port()
    env = gateway_env(
        port=port,
        store_url=redis_url,
        upstream_url=upstream_demo_url,
        database_path=tmp_path / "users.db",
    ) | {"GATEWAY_LISTEN_WORKERS": "0"}
    command = [sys.executable, "-m", "gateway", "serve", "--workers", "2"]
    process = ServerProcess("gateway", command, port, env=env)
    process.start()
    yield f"http://{HOST}:{port}", process, env
    process.stop()


async def test_two_workers_share_the_port_and_the_state(
    workers: tuple[str, ServerProcess, dict[str, str]], http: aiohttp.ClientSession
) -> None:
    """Requests spread over both workers; registration races, rotation and
    revocation still behave as with one process."""
    base, process, _ = workers
    assert process.process is not None
    await asyncio.sleep(0.5)
    assert len(children_of(process.process.pid)) == 2

    async def attempt(n: int) -> int:
        async with await register(http, base, "shared", f"{PASSWORD}{n}") as r:
            return r.status

    statuses = sorted(await asyncio.gather(*(attempt(n) for n in range(20))))
    assert statuses == [201] + [409] * 19

    pair = await new_session(http, base, "spread")
    async with await logout(http, base, pair["refresh_token"]) as response:
        assert response.status == 204
    # Fresh connections land on either worker: every one must refuse it.
    for _ in range(20):
        async with (
            aiohttp.ClientSession() as fresh,
            fresh.get(
                f"{base}/resource", headers=bearer(pair["access_token"])
            ) as response,
        ):
            assert response.status == 401


async def test_metrics_add_up_over_workers(
    workers: tuple[str, ServerProcess, dict[str, str]], http: aiohttp.ClientSession
) -> None:
    """Whichever worker answers /metrics, it counts every worker's logins."""
    base, _, env = workers
    await new_session(http, base, "metered")
    for _ in range(9):
        async with aiohttp.ClientSession() as fresh:
            response = await login(fresh, base, "metered")
            assert response.status == 200
            response.release()
    admin = f"http://{HOST}:{env['GATEWAY_ADMIN_PORT']}/metrics"
    for _ in range(4):
        async with aiohttp.ClientSession() as fresh, fresh.get(admin) as response:
            text = await response.text()
        assert 'gateway_logins_total{outcome="success"} 10.0' in text


async def test_a_dead_worker_is_replaced_and_sigterm_stops_all(
    workers: tuple[str, ServerProcess, dict[str, str]], http: aiohttp.ClientSession
) -> None:
    """Killing a worker starts a new one; SIGTERM ends everything with 0."""
    base, process, _ = workers
    assert process.process is not None
    parent = process.process.pid
    await asyncio.sleep(0.5)
    victim = children_of(parent)[0]
    os.kill(victim, signal.SIGKILL)
    for _ in range(100):
        current = children_of(parent)
        if len(current) == 2 and victim not in current:
            break
        await asyncio.sleep(0.05)
    assert len(current) == 2 and victim not in current
    # A fresh connection: a kept-alive one may have belonged to the victim.
    async with (
        aiohttp.ClientSession() as fresh,
        fresh.get(f"{base}/.well-known/jwks.json") as response,
    ):
        assert response.status == 200

    process.process.send_signal(signal.SIGTERM)
    assert process.process.wait(timeout=20) == 0
    assert all(_gone(child) for child in current)


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return " Z " in stat  # a zombie has exited; only its entry is left


def test_unreachable_store_is_one_line_with_workers(tmp_path: Path) -> None:
    """With workers, a bad store address is still a single line and exit 1."""
    port = free_port()
    env = gateway_env(
        port=port,
        store_url=f"redis://{HOST}:{free_port()}/0",
        upstream_url="http://127.0.0.1:9",
        database_path=tmp_path / "users.db",
    )
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--workers", "2"],
        env=env | {"GATEWAY_STORE_TIMEOUT": "0.5"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    errors = [
        line for line in result.stderr.splitlines() if line.startswith("gateway:")
    ]
    assert len(errors) == 1
    assert errors[0].startswith("gateway: cannot reach the session store")


async def test_workers_do_not_outlive_a_killed_supervisor(
    workers: tuple[str, ServerProcess, dict[str, str]],
) -> None:
    """SIGKILL on the supervisor takes its workers down too."""
    _, process, _ = workers
    assert process.process is not None
    await asyncio.sleep(0.5)
    children = children_of(process.process.pid)
    process.process.kill()
    process.process.wait()
    for _ in range(100):
        if all(_gone(child) for child in children):
            break
        await asyncio.sleep(0.05)
    assert all(_gone(child) for child in children)

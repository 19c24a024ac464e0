"""Fixtures that start the real servers on free loopback ports."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import asyncpg
import pytest
import redis

from gateway.urls import redact_url
from gateway.users.base import reason
from tests import servers
from tests.recorder import Recorder, recording_upstream

T = TypeVar("T")

DRAGONFLY_MISSING = (
    "Dragonfly not available: set DRAGONFLY_URL or put a dragonfly binary on PATH"
)
POSTGRES_MISSING = (
    "PostgreSQL not reachable at {url} ({cause}); scripts/ensure-test-tools.sh "
    "starts the local one, or set TEST_POSTGRES_URL"
)


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    server = servers.redis_server().start()
    yield f"redis://{servers.HOST}:{server.port}/0"
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster_nodes(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[list[int]]:
    """Three redis-server primaries in cluster mode: their ports."""
    directory = tmp_path_factory.mktemp("cluster")
    nodes = [servers.redis_cluster_node(directory).start() for _ in range(3)]
    servers.form_cluster(nodes)
    yield [node.port for node in nodes]
    for node in nodes:
        node.stop()


@pytest.fixture
def redis_cluster_url(redis_cluster_nodes: list[int]) -> str:
    """The cluster, flushed for this test, as a store URL."""
    for port in redis_cluster_nodes:
        with redis.Redis(host=servers.HOST, port=port) as client:
            client.flushall()
    nodes = ",".join(f"{servers.HOST}:{port}" for port in redis_cluster_nodes)
    return f"redis+cluster://{nodes}/0"


@pytest.fixture(scope="session")
def dragonfly_server_url() -> Iterator[str | None]:
    if os.environ.get("DRAGONFLY_URL"):
        yield os.environ["DRAGONFLY_URL"]
        return
    binary = shutil.which("dragonfly")
    if binary is None:
        yield None
        return
    server = servers.dragonfly_server(binary).start()
    yield f"redis://{servers.HOST}:{server.port}/0"
    server.stop()


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A database of this test session's own, dropped at the end; the tests
    that need one are skipped where no PostgreSQL answers."""
    admin_url = os.environ.get("TEST_POSTGRES_URL", servers.POSTGRES_ADMIN_URL)
    try:
        url = _run(servers.create_postgres_database(admin_url))
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        pytest.skip(
            POSTGRES_MISSING.format(url=redact_url(admin_url), cause=reason(exc))
        )
    yield url
    _run(servers.drop_postgres_database(admin_url, url))


@pytest.fixture
async def postgres_url(postgres_server_url: str) -> str:
    """The session's PostgreSQL database, emptied for this test."""
    await servers.empty_postgres_database(postgres_server_url)
    return postgres_server_url


def _run(work: Coroutine[Any, Any, T]) -> T:
    # A loop of its own: asyncio.run would unset the loop the async tests use.
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(work)
    finally:
        loop.close()


@pytest.fixture
def redis_url(redis_server_url: str) -> str:
    """A flushed Redis database for this test."""
    with redis.Redis.from_url(redis_server_url) as client:
        client.flushall()
    return redis_server_url


@pytest.fixture(params=["memory", "redis", "dragonfly"])
def store_url(request: pytest.FixtureRequest) -> str:
    """Every session backend that can run here, each as a separate test."""
    if request.param == "memory":
        return "memory://"
    if request.param == "redis":
        return str(request.getfixturevalue("redis_url"))
    url = request.getfixturevalue("dragonfly_server_url")
    if url is None:
        pytest.skip(DRAGONFLY_MISSING)
    with redis.Redis.from_url(url) as client:
        client.flushall()
    return str(url)


@pytest.fixture(scope="session")
def upstream_demo_url() -> Iterator[str]:
    server = servers.upstream_demo().start()
    yield f"http://{servers.HOST}:{server.port}"
    server.stop()


@dataclass
class Gateway:
    url: str
    process: servers.ServerProcess
    env: dict[str, str]

    def output(self) -> str:
        return self.process.output()

    async def logged(self, text: str, within_s: float = 5.0) -> bool:
        """Whether *text* shows up in the log: lines are written by a thread
        of their own, a moment after the answer that caused them."""
        deadline = asyncio.get_running_loop().time() + within_s
        while text not in self.output():
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    @property
    def admin_url(self) -> str:
        return f"http://{servers.HOST}:{self.env['GATEWAY_ADMIN_PORT']}"


GatewayFactory = Callable[..., Gateway]


@pytest.fixture
def start_gateway(tmp_path: Path, upstream_demo_url: str) -> Iterator[GatewayFactory]:
    """Start gateway processes; each is stopped at the end of the test."""
    started: list[servers.ServerProcess] = []

    def start(
        store_url: str = "memory://",
        upstream_url: str | None = None,
        config: str | None = None,
        **settings: str,
    ) -> Gateway:
        """A gateway configured by *settings* (section_key=value) and, for
        what only a file can say (routes), the YAML text *config*."""
        port = servers.free_port()
        env = servers.gateway_env(
            port=port,
            store_url=store_url,
            upstream_url=upstream_url or upstream_demo_url,
            database_path=tmp_path / f"users-{port}.db",
            extra={f"GATEWAY_{key.upper()}": value for key, value in settings.items()},
        )
        config_path = None
        if config is not None:
            config_path = tmp_path / f"config-{port}.yaml"
            config_path.write_text(config)
        process = servers.gateway(env, port, config_path).start()
        started.append(process)
        return Gateway(f"http://{servers.HOST}:{port}", process, env)

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def gateway(start_gateway: GatewayFactory, store_url: str) -> Gateway:
    """A gateway in front of the upstream demo, once per store backend."""
    return start_gateway(store_url)


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    """A loopback upstream that keeps every request it receives."""
    async with recording_upstream() as upstream:
        yield upstream


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session

"""Real processes for the tests: redis-server, the upstream demo, the gateway.

Each one listens on a free loopback port, is waited for until it accepts
connections, and is stopped (and its log kept for failure messages) at the end.
PostgreSQL is the exception: the machine runs one, and the tests make (and
drop) databases of their own on it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

HOST = "127.0.0.1"
TEST_SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"
# The machine's PostgreSQL, as the superuser that may create databases;
# TEST_POSTGRES_URL names another server.
POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"process exited with {process.returncode}:\n{log.read_text()}"
            )
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port} after 20 s:\n{log.read_text()}")


class ServerProcess:
    """A child process with its output in a temporary log file."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        port: int,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.port = port
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.log = Path(tempfile.mkstemp(prefix=f"{name}-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServerProcess:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.command,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
            )
        wait_for_port(self.port, self.process, self.log)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        code = self.process.returncode
        self.process = None
        return code

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def redis_server(port: int | None = None) -> ServerProcess:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (make test installs it)")
    port = port or free_port()
    command = [
        binary,
        "--port",
        str(port),
        "--bind",
        HOST,
        "--save",
        "",
        "--appendonly",
        "no",
        "--protected-mode",
        "yes",
    ]
    return ServerProcess("redis", command, port)


def redis_cluster_node(directory: Path) -> ServerProcess:
    """One primary of a Redis Cluster, its cluster state kept in *directory*."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (make test installs it)")
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    command = [
        binary,
        "--port",
        str(port),
        "--bind",
        HOST,
        "--cluster-enabled",
        "yes",
        # The default bus port is port + 10000, past 65535 for high ports.
        "--cluster-port",
        str(free_port()),
        "--cluster-config-file",
        str(directory / f"nodes-{port}.conf"),
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    return ServerProcess("redis-cluster", command, port, cwd=directory)


def form_cluster(nodes: list[ServerProcess]) -> None:
    """Join the nodes into one cluster of primaries and wait until it serves."""
    addresses = [f"{HOST}:{node.port}" for node in nodes]
    subprocess.run(
        ["redis-cli", "--cluster", "create", *addresses, "--cluster-yes"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        states = [
            subprocess.run(
                ["redis-cli", "-p", str(node.port), "cluster", "info"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout
            for node in nodes
        ]
        if all("cluster_state:ok" in state for state in states):
            return
        time.sleep(0.1)
    raise RuntimeError("the Redis Cluster did not reach cluster_state:ok")


def redis_replica(primary_port: int) -> ServerProcess:
    server = redis_server()
    server.command += ["--replicaof", HOST, str(primary_port)]
    return server


def redis_sentinel(primary_port: int, service: str, directory: Path) -> ServerProcess:
    """A sentinel watching the primary on *primary_port* as *service*, quick
    to declare it down (1 s) so failover tests stay short."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (make test installs it)")
    port = free_port()
    config = directory / f"sentinel-{port}.conf"
    config.write_text(
        f"port {port}\nbind {HOST}\n"
        f"sentinel monitor {service} {HOST} {primary_port} 1\n"
        f"sentinel down-after-milliseconds {service} 1000\n"
        f"sentinel failover-timeout {service} 3000\n"
    )
    return ServerProcess("sentinel", [binary, str(config), "--sentinel"], port)


def dragonfly_server(binary: str) -> ServerProcess:
    port = free_port()
    command = [binary, "--port", str(port), "--bind", HOST, "--dbfilename", ""]
    return ServerProcess("dragonfly", command, port)


def upstream_demo() -> ServerProcess:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "upstream_demo",
        "--host",
        HOST,
        "--port",
        str(port),
    ]
    return ServerProcess("upstream", command, port)


def gateway_env(
    *,
    port: int,
    store_url: str,
    upstream_url: str,
    database_path: Path,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Environment for a gateway process: the variables tests care about."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(
        {
            "GATEWAY_LISTEN_HOST": HOST,
            "GATEWAY_LISTEN_PORT": str(port),
            "GATEWAY_STORE_URL": store_url,
            "GATEWAY_UPSTREAM_URL": upstream_url,
            "GATEWAY_DATABASE_PATH": str(database_path),
            "GATEWAY_JWT_SECRET": TEST_SECRET,
            "GATEWAY_ACCOUNTS_BCRYPT_COST": "4",
            "GATEWAY_LOG_LEVEL": "debug",
            "GATEWAY_ADMIN_PORT": str(free_port()),
            # One process unless a test asks for workers (tests/e2e/test_workers.py).
            "GATEWAY_LISTEN_WORKERS": "1",
        }
    )
    env.update(extra or {})
    return env


def gateway(
    env: Mapping[str, str], port: int, config: Path | None = None
) -> ServerProcess:
    command = [sys.executable, "-m", "gateway", "serve"]
    if config is not None:
        command += ["--config", str(config)]
    return ServerProcess(
        "gateway", command, port, env=env, cwd=Path(tempfile.gettempdir())
    )


async def create_postgres_database(admin_url: str) -> str:
    """A new, uniquely named database on the server at *admin_url*; its URL."""
    name = f"gw_test_{secrets.token_hex(6)}"
    connection = await asyncpg.connect(admin_url, timeout=5)
    try:
        # A name cannot be a query parameter; this one is ours, hex only.
        await connection.execute(f"CREATE DATABASE {name}")
    finally:
        await connection.close()
    return urlsplit(admin_url)._replace(path=f"/{name}").geturl()


async def drop_postgres_database(admin_url: str, database_url: str) -> None:
    """Drop the database that :func:`create_postgres_database` made."""
    name = _test_database_name(database_url)
    connection = await asyncpg.connect(admin_url, timeout=5)
    try:
        # FORCE: a gateway a failed test left behind may still be connected.
        await connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await connection.close()


async def empty_postgres_database(database_url: str) -> None:
    """Remove every table, so that the next test starts on a new database."""
    _test_database_name(database_url)
    connection = await asyncpg.connect(database_url, timeout=5)
    try:
        await connection.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await connection.close()


def _test_database_name(url: str) -> str:
    # Nothing but the databases the tests made is ever emptied or dropped.
    name = urlsplit(url).path.lstrip("/")
    if not name.startswith("gw_test_"):
        raise ValueError(f"not a test database: {name}")
    return name

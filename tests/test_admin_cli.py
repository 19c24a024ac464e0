"""The admin command line, run as the real command on a real SQLite file and,
where sessions matter, a real redis-server shared with a serving gateway."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import select
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests import servers
from tests.client import (
    PASSWORD,
    login,
    login_as,
    new_session,
    proxied_status,
    refresh,
)
from tests.conftest import Gateway, GatewayFactory

SESSION_FIELDS = {"id", "created_at", "last_used_at", "expires_in", "user_agent", "ip"}


@dataclass
class AdminCommand:
    """``gateway`` with one environment, so one database and one store."""

    env: dict[str, str]
    cwd: Path

    def __call__(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gateway", *args],
            input=stdin,
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def json(self, *args: str, stdin: str = "") -> Any:
        result = self(*args, "--json", stdin=stdin)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def create(self, username: str, password: str = PASSWORD) -> str:
        """Add a user; return the new id."""
        created = self.json("users", "create", username, stdin=f"{password}\n")
        return str(created["id"])


@pytest.fixture
def admin(tmp_path: Path) -> AdminCommand:
    """The command on the embedded store: enough for what needs no sessions."""
    env = servers.gateway_env(
        port=servers.free_port(),
        store_url="memory://",
        upstream_url="http://127.0.0.1:9",
        database_path=tmp_path / "users.db",
    )
    return AdminCommand(env, tmp_path)


@dataclass
class Served:
    """A serving gateway and the command line beside it."""

    gateway: Gateway
    admin: AdminCommand


@pytest.fixture
def served(start_gateway: GatewayFactory, redis_url: str, tmp_path: Path) -> Served:
    """A gateway on Redis, and the command on the same Redis and database."""
    gateway = start_gateway(redis_url, database_path=str(tmp_path / "users.db"))
    return Served(gateway, AdminCommand(gateway.env, tmp_path))


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without any GATEWAY_ variable, plus *extra*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return env | dict(extra or {})


def read_terminal_until(terminal: int, marker: bytes) -> bytes:
    seen = b""
    deadline = time.monotonic() + 20
    while marker not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([terminal], [], [], 0.5)
        if ready:
            seen += os.read(terminal, 1024)
    assert marker in seen, seen
    return seen


def reap(pid: int, grace: float) -> int:
    """The child's exit code; it is killed if still running after *grace* s."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr.strip()


async def refused_within_a_second(
    http: aiohttp.ClientSession, base: str, access: str
) -> bool:
    """The revocation feed is asynchronous: give it a moment, not forever."""
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        if await proxied_status(http, base, access) == 401:
            return True
        await asyncio.sleep(0.02)
    return False


async def refresh_status(
    http: aiohttp.ClientSession, base: str, refresh_token: str
) -> int:
    async with await refresh(http, base, refresh_token) as response:
        return response.status


async def login_status(http: aiohttp.ClientSession, base: str, username: str) -> int:
    async with await login(http, base, username) as response:
        return response.status


def test_create_then_list(admin: AdminCommand) -> None:
    """A user created from piped stdin is listed, in a table and as JSON."""
    created = admin("users", "create", "Joe", stdin=f"{PASSWORD}\n")
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith("created user Joe (")

    table = admin("users", "list")
    assert table.returncode == 0
    heading, row = table.stdout.splitlines()
    assert heading.split() == ["USERNAME", "ID", "CREATED", "DISABLED"]
    assert row.split()[0] == "Joe" and row.split()[-1] == "no"

    [listed] = admin.json("users", "list")
    assert set(listed) == {"id", "username", "created_at", "disabled"}
    assert listed["username"] == "Joe" and listed["disabled"] is False
    assert listed["created_at"].endswith("Z")
    assert row.split()[1] == listed["id"]


def test_users_are_listed_oldest_first(admin: AdminCommand) -> None:
    """An empty database lists nothing; later users come later."""
    assert admin.json("users", "list") == []
    assert admin("users", "list").stdout.strip() == "no users"
    ids = [admin.create(name) for name in ("first", "second", "third")]
    assert [user["id"] for user in admin.json("users", "list")] == ids


def test_create_follows_the_registration_policy(admin: AdminCommand) -> None:
    """A bad name, a short or missing password, or a taken name (compared
    as registration compares them) is refused with one line and exit 1."""
    admin.create("Joe")
    refusals = {
        ("a b", PASSWORD): "gateway: username may contain",
        ("jo", PASSWORD): "gateway: username must be 3 to 64",
        ("ann", "short"): "gateway: password must be 8 to 1024",
        ("ann", ""): "gateway: password must be 8 to 1024",
        ("ｊｏｅ", PASSWORD): "gateway: a user named ｊｏｅ already exists",
    }
    for (username, password), message in refusals.items():
        result = admin("users", "create", username, stdin=password)
        assert result.returncode == 1
        assert one_line(result).startswith(message)
    assert [user["username"] for user in admin.json("users", "list")] == ["Joe"]


async def test_piped_password_keeps_all_but_the_line_end(
    served: Served, http: aiohttp.ClientSession
) -> None:
    """Spaces around a piped password are part of it; only the final line
    end is dropped, so the same text logs in over HTTP."""
    spaced = f"  {PASSWORD}  "
    served.admin.create("spacey", spaced)
    base = served.gateway.url
    async with await login(http, base, "spacey", spaced) as response:
        assert response.status == 200
    async with await login(http, base, "spacey", PASSWORD) as response:
        assert response.status == 401


def test_password_is_prompted_for_on_a_terminal(admin: AdminCommand) -> None:
    """On a terminal the password is asked for twice, without echo."""
    pid, terminal = pty.fork()
    if pid == 0:  # the child: becomes the command, on its own terminal
        try:
            os.chdir(admin.cwd)
            os.execve(  # noqa: S606 - the child becomes the real command
                sys.executable,
                [sys.executable, "-m", "gateway", "users", "create", "ttyuser"],
                admin.env,
            )
        finally:
            os._exit(127)  # reached only if exec failed: never a second pytest
    try:
        seen = read_terminal_until(terminal, b"Password: ")
        os.write(terminal, PASSWORD.encode() + b"\n")
        seen += read_terminal_until(terminal, b"again: ")
        os.write(terminal, PASSWORD.encode() + b"\n")
        seen += read_terminal_until(terminal, b"created user ttyuser")
    finally:
        code = reap(pid, grace=10)
        os.close(terminal)

    assert code == 0
    assert PASSWORD.encode() not in seen
    assert [user["username"] for user in admin.json("users", "list")] == ["ttyuser"]


def test_unknown_user_is_one_line_and_exit_1(admin: AdminCommand) -> None:
    """Every command naming a user that does not exist says so, exit 1."""
    for command in (
        ["users", "delete", "ghost"],
        ["users", "disable", "ghost"],
        ["users", "enable", "ghost"],
        ["sessions", "list", "ghost"],
        ["sessions", "revoke", "ghost"],
        ["sessions", "revoke", "ghost", "0" * 32],
    ):
        # --json too: a script must not get half an answer on stdout.
        result = admin(*command, "--json")
        assert result.returncode == 1, command
        assert one_line(result) == "gateway: no user named ghost"
        assert result.stdout == ""


def test_memory_store_sessions_are_out_of_reach(admin: AdminCommand) -> None:
    """On memory:// the session commands work but say they cannot see the
    serving gateway's sessions."""
    admin.create("joe")
    listing = admin("sessions", "list", "joe")
    assert listing.returncode == 0
    assert listing.stdout.strip() == "joe has no sessions"
    assert "memory:// sessions live inside the serving gateway" in one_line(listing)

    deleted = admin.json("users", "delete", "joe")
    assert deleted["deleted"] is True and deleted["ended_sessions"] == []
    assert admin.json("users", "list") == []


async def test_delete_ends_every_session(
    served: Served, http: aiohttp.ClientSession
) -> None:
    """Deleting a user kills their refresh and access tokens on the serving
    gateway, and their name no longer logs in."""
    base = served.gateway.url
    first = await new_session(http, base, "leaver")
    second = await login_as(http, base, "leaver", "Second/1.0")

    deleted = served.admin.json("users", "delete", "leaver")
    assert deleted["username"] == "leaver" and deleted["deleted"] is True
    assert len(deleted["ended_sessions"]) == 2

    for pair in (first, second):
        assert await refresh_status(http, base, pair["refresh_token"]) == 401
        assert await refused_within_a_second(http, base, pair["access_token"])
    assert await login_status(http, base, "leaver") == 401
    assert served.admin.json("users", "list") == []


async def test_disable_ends_sessions_and_enable_allows_logins(
    served: Served, http: aiohttp.ClientSession
) -> None:
    """A disabled user's tokens die and logins are refused; enabling lets the
    same password in again."""
    base = served.gateway.url
    served.admin.create("pausable")
    async with await login(http, base, "pausable") as response:
        assert response.status == 200
        pair = await response.json()

    disabled = served.admin("users", "disable", "pausable")
    assert disabled.returncode == 0, disabled.stderr
    assert disabled.stdout.strip() == "disabled user pausable; 1 session ended"
    assert await refresh_status(http, base, pair["refresh_token"]) == 401
    assert await refused_within_a_second(http, base, pair["access_token"])
    assert await login_status(http, base, "pausable") == 401
    [listed] = served.admin.json("users", "list")
    assert listed["disabled"] is True

    enabled = served.admin.json("users", "enable", "pausable")
    assert enabled == {"id": listed["id"], "username": "pausable", "disabled": False}
    assert await login_status(http, base, "pausable") == 200


async def test_sessions_list_shows_each_login(
    served: Served, http: aiohttp.ClientSession
) -> None:
    """Each login is listed with the fields its owner sees, in a table and
    as JSON."""
    base = served.gateway.url
    await new_session(http, base, "roamer")
    await login_as(http, base, "roamer", "Phone/1.0")

    listed = served.admin.json("sessions", "list", "roamer")
    assert len(listed) == 2
    assert all(set(entry) == SESSION_FIELDS for entry in listed)
    assert listed[1]["user_agent"] == "Phone/1.0"
    assert all(entry["ip"] == "127.0.0.1" for entry in listed)
    assert all(604790 <= entry["expires_in"] <= 604800 for entry in listed)

    table = served.admin("sessions", "list", "roamer").stdout.splitlines()
    assert table[0].split()[:2] == ["ID", "CREATED"]
    assert table[2].startswith(listed[1]["id"]) and table[2].endswith("Phone/1.0")
    # A week of idle time, read just after login: a second may have gone.
    assert " ".join(table[1].split()[3:5]) in {"7d 0h", "6d 23h"}


async def test_sessions_revoke_one(served: Served, http: aiohttp.ClientSession) -> None:
    """Revoking one session by id kills its tokens; the other session lives."""
    base = served.gateway.url
    kept = await new_session(http, base, "picky")
    doomed = await login_as(http, base, "picky", "Doomed/1.0")
    listed = served.admin.json("sessions", "list", "picky")
    target = next(s["id"] for s in listed if s["user_agent"] == "Doomed/1.0")

    revoked = served.admin.json("sessions", "revoke", "picky", target)
    assert revoked["ended_sessions"] == [target]

    assert await refresh_status(http, base, doomed["refresh_token"]) == 401
    assert await refused_within_a_second(http, base, doomed["access_token"])
    assert await proxied_status(http, base, kept["access_token"]) == 200
    assert await refresh_status(http, base, kept["refresh_token"]) == 200

    again = served.admin("sessions", "revoke", "picky", target)
    assert again.returncode == 1
    assert one_line(again) == f"gateway: picky has no session {target}"


async def test_sessions_revoke_all(served: Served, http: aiohttp.ClientSession) -> None:
    """Without a session id every session of the user ends, tokens and all;
    other users keep theirs."""
    base = served.gateway.url
    pairs = [await new_session(http, base, "everyone")]
    pairs.append(await login_as(http, base, "everyone", "Second/1.0"))
    bystander = await new_session(http, base, "bystander")

    result = served.admin("sessions", "revoke", "everyone")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2 sessions ended for user everyone"
    for pair in pairs:
        assert await refresh_status(http, base, pair["refresh_token"]) == 401
        assert await refused_within_a_second(http, base, pair["access_token"])
    assert served.admin.json("sessions", "list", "everyone") == []
    assert await proxied_status(http, base, bystander["access_token"]) == 200
    assert len(served.admin.json("sessions", "list", "bystander")) == 1


def test_check_config_summarizes_without_the_secret(tmp_path: Path) -> None:
    """A valid config file: "config OK", a summary, no secret and no store
    password, exit 0."""
    secret = "a-secret-for-the-config-file-check-0123456789"
    config = tmp_path / "gateway.yaml"
    config.write_text(
        f"jwt: {{secret: {secret}, access_ttl: 600}}\n"
        "store: {url: 'redis://:hunter2@127.0.0.1:6399/0'}\n"
        "routes: [{prefix: /public, public: true}]\n"
    )
    admin = AdminCommand(clean_env(), tmp_path)

    text = admin("check-config", "--config", str(config))
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines()[0] == "config OK"
    summary = admin.json("check-config", "--config", str(config))
    assert summary["ok"] is True
    assert summary["routes"] == ["/public"]
    assert summary["access_ttl"] == 600
    assert summary["store"] == "redis://:***@127.0.0.1:6399/0"
    assert summary["database"] == "./data/users.db"
    for output in (text.stdout, json.dumps(summary)):
        assert secret not in output and "hunter2" not in output


def test_check_config_shows_the_postgres_url_without_its_password(
    tmp_path: Path,
) -> None:
    """database.url is summarized with its password masked."""
    env = {
        "GATEWAY_JWT_SECRET": servers.TEST_SECRET,
        "GATEWAY_DATABASE_URL": "postgresql://gw:hunter2@db.internal:5432/users",
    }
    admin = AdminCommand(clean_env(env), tmp_path)

    summary = admin.json("check-config")
    assert summary["database"] == "postgresql://gw:***@db.internal:5432/users"
    assert "hunter2" not in admin("check-config").stdout


def test_check_config_refuses_as_serve_does(tmp_path: Path) -> None:
    """A bad config: the same line and exit status 2 as ``serve``."""
    config = tmp_path / "gateway.yaml"
    config.write_text("listen: {port: 8080, colour: blue}\n")
    admin = AdminCommand(clean_env(), tmp_path)

    checked = admin("check-config", "--config", str(config))
    served = admin("serve", "--config", str(config))
    assert checked.returncode == served.returncode == 2
    assert one_line(checked) == one_line(served)
    assert "listen.colour" in checked.stderr

    no_secret = admin("check-config")
    assert no_secret.returncode == 2
    assert one_line(no_secret).startswith("gateway: config: jwt.secret: required")


def test_config_is_found_as_serve_finds_it(tmp_path: Path) -> None:
    """--config, then $GATEWAY_CONFIG, then ./config.yaml: all three reach
    the database the file names."""
    database = tmp_path / "from-file.db"
    config = tmp_path / "config.yaml"
    config.write_text(
        f"jwt: {{secret: {servers.TEST_SECRET}}}\n"
        f"database: {{path: {database}}}\n"
        "store: {url: 'memory://'}\n"
        "accounts: {bcrypt_cost: 4}\n"
    )
    by_option = AdminCommand(clean_env(), tmp_path.parent)
    by_option("users", "create", "fromfile", "--config", str(config), stdin=PASSWORD)
    by_variable = AdminCommand(clean_env({"GATEWAY_CONFIG": str(config)}), Path("/"))
    by_default = AdminCommand(clean_env(), tmp_path)

    for admin in (by_variable, by_default):
        [listed] = admin.json("users", "list")
        assert listed["username"] == "fromfile"
    assert database.exists()


def test_unreachable_store_is_one_line(admin: AdminCommand) -> None:
    """A store that does not answer: exit 1, one line without its password,
    and the user is left as they were."""
    admin.create("survivor")
    dead = f"redis://:hunter2@127.0.0.1:{servers.free_port()}/0"
    cut_off = AdminCommand(
        admin.env | {"GATEWAY_STORE_URL": dead, "GATEWAY_STORE_TIMEOUT": "1"},
        admin.cwd,
    )
    for command in (["users", "delete"], ["users", "disable"], ["sessions", "list"]):
        result = cut_off(*command, "survivor")
        assert result.returncode == 1
        line = one_line(result)
        assert line.startswith("gateway: cannot reach the session store at redis://")
        assert "hunter2" not in line
    [listed] = admin.json("users", "list")
    assert listed["disabled"] is False


def test_unusable_database_is_one_line(admin: AdminCommand, tmp_path: Path) -> None:
    """A database path that cannot be created: exit 1, one line."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    broken = AdminCommand(
        admin.env | {"GATEWAY_DATABASE_PATH": str(blocker / "users.db")}, admin.cwd
    )
    result = broken("users", "list")
    assert result.returncode == 1
    assert one_line(result).startswith("gateway: user database: cannot open")


def test_unreachable_postgres_is_one_line_without_the_password(
    admin: AdminCommand,
) -> None:
    """A PostgreSQL server that does not answer: exit 1, one line with the
    address and the cause, never the password."""
    url = f"postgresql://gw:hunter2@{servers.HOST}:{servers.free_port()}/users"
    broken = AdminCommand(
        admin.env | {"GATEWAY_DATABASE_URL": url, "GATEWAY_DATABASE_BUSY_TIMEOUT": "2"},
        admin.cwd,
    )
    result = broken("users", "list")
    assert result.returncode == 1
    line = one_line(result)
    assert line.startswith(
        f"gateway: user database: cannot reach postgresql://gw:***@{servers.HOST}:"
    )
    assert "Connect call failed" in line
    assert "hunter2" not in result.stderr + result.stdout


def test_users_are_managed_on_postgres(admin: AdminCommand, postgres_url: str) -> None:
    """The command line works on the PostgreSQL database the server would use."""
    on_postgres = AdminCommand(
        admin.env | {"GATEWAY_DATABASE_URL": postgres_url}, admin.cwd
    )
    user_id = on_postgres.create("Pat")
    assert on_postgres("users", "disable", "pat").returncode == 0
    [listed] = on_postgres.json("users", "list")
    assert (listed["id"], listed["disabled"]) == (user_id, True)
    assert on_postgres("users", "delete", "pat").returncode == 0
    assert on_postgres.json("users", "list") == []


def test_locked_database_is_one_line(admin: AdminCommand) -> None:
    """A write that waits out the busy timeout: exit 1, one line saying which
    operation failed and why."""
    admin.create("early")
    locked = AdminCommand(
        admin.env | {"GATEWAY_DATABASE_BUSY_TIMEOUT": "0.2"}, admin.cwd
    )
    holder = sqlite3.connect(admin.env["GATEWAY_DATABASE_PATH"], isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        result = locked("users", "create", "late", stdin=PASSWORD)
    finally:
        holder.close()
    assert result.returncode == 1
    assert one_line(result) == (
        "gateway: user database: create_user failed: database is locked"
    )

"""The user database contract, run against a real SQLite file and a real
PostgreSQL database; then what only one of the two has."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest
from prometheus_client import REGISTRY

from gateway.config import DatabaseConfig
from gateway.users import (
    DatabaseUnavailable,
    UserDatabase,
    UsernameTaken,
    open_user_database,
    uuid7,
)
from gateway.users import postgres as postgres_backend
from gateway.users import sqlite as sqlite_backend
from tests.servers import HOST, free_port

Opener = Callable[[], Awaitable[UserDatabase]]


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each backend, as database.url names it."""
    if request.param == "sqlite":
        # An empty file, as the PostgreSQL database is an empty database:
        # then racing opens contend for the migration alone.
        path = tmp_path / "users.db"
        with sqlite3.connect(path) as raw:
            raw.execute("PRAGMA journal_mode=WAL")
        # Four slashes: an absolute path.
        return f"sqlite:///{path}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def open_database(database_url: str) -> AsyncIterator[Opener]:
    """Open the test's database as a gateway would; all closed at the end."""
    opened: list[UserDatabase] = []

    async def open_one() -> UserDatabase:
        database = await open_user_database(DatabaseConfig(url=database_url))
        opened.append(database)
        return database

    yield open_one
    for database in opened:
        await database.close()


def migrations_logged(caplog: pytest.LogCaptureFixture) -> int:
    return sum(record.message == "database migrated" for record in caplog.records)


def test_both_backends_know_the_same_versions() -> None:
    """A schema version means the same table on either backend."""
    assert len(sqlite_backend.MIGRATIONS) == len(postgres_backend.MIGRATIONS)


async def test_new_database_is_migrated_once(
    open_database: Opener, caplog: pytest.LogCaptureFixture
) -> None:
    """The first open creates the schema at the latest version; opening it
    again finds it current and changes nothing."""
    caplog.set_level(logging.INFO, logger="gateway.database")
    first = await open_database()
    assert await first.schema_version() == len(sqlite_backend.MIGRATIONS)
    await first.close()

    again = await open_database()
    assert await again.schema_version() == len(sqlite_backend.MIGRATIONS)
    assert migrations_logged(caplog) == 1


async def test_racing_opens_of_an_empty_database_migrate_once(
    open_database: Opener, caplog: pytest.LogCaptureFixture
) -> None:
    """Gateways starting together on a new database all open it, and only
    one of them migrates it."""
    caplog.set_level(logging.INFO, logger="gateway.database")
    opened = await asyncio.gather(*(open_database() for _ in range(8)))
    versions = [await database.schema_version() for database in opened]
    assert versions == [len(sqlite_backend.MIGRATIONS)] * 8
    assert migrations_logged(caplog) == 1


async def test_users_survive_reopening(open_database: Opener) -> None:
    """A user written before a restart is found after it."""
    database = await open_database()
    created = await database.create_user("Joe", "joe", "hash")
    await database.close()

    reopened = await open_database()
    assert await reopened.find_by_name("joe") == created
    assert await reopened.find_by_id(created.id) == created
    assert created.username == "Joe" and not created.disabled


async def test_uniqueness_is_enforced_by_the_database(open_database: Opener) -> None:
    """Racing inserts of one normalized name: one row, the rest UsernameTaken."""
    database = await open_database()
    results = await asyncio.gather(
        *(database.create_user(f"Ann{n}", "ann", "h") for n in range(20)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert sum(isinstance(r, UsernameTaken) for r in results) == 19
    assert len(await database.list_users()) == 1


async def test_users_are_listed_disabled_and_deleted(open_database: Opener) -> None:
    """The listing is oldest first without hashes; disabling and deleting
    say whether there was such a user."""
    database = await open_database()
    first = await database.create_user("First", "first", "h1")
    second = await database.create_user("Second", "second", "h2")

    assert await database.set_disabled(first.id, True)
    listed = await database.list_users()
    assert [(u.id, u.username, u.disabled) for u in listed] == [
        (first.id, "First", True),
        (second.id, "Second", False),
    ]
    found = await database.find_by_name("first")
    assert found is not None and found.disabled
    assert await database.delete_user(first.id)
    assert not await database.delete_user(first.id)
    assert not await database.set_disabled(first.id, False)
    assert [u.id for u in await database.list_users()] == [second.id]


async def test_password_is_replaced(open_database: Opener) -> None:
    """set_password changes the stored hash and nothing else."""
    database = await open_database()
    user = await database.create_user("Pat", "pat", "old")
    await database.set_password(user.id, "new")
    found = await database.find_by_id(user.id)
    assert found is not None
    assert (found.password_hash, found.username) == ("new", "Pat")


async def test_failures_are_unavailable_and_counted(open_database: Opener) -> None:
    """A database that cannot answer raises DatabaseUnavailable naming the
    operation; the failure is counted and the query timed as any other."""
    database = await open_database()
    await database.ping()
    timed_before = _sample("gateway_database_duration_seconds_count", "find_by_name")
    failed_before = _sample("gateway_database_errors_total", "find_by_name")
    await database.close()

    with pytest.raises(DatabaseUnavailable, match=r"^find_by_name failed: "):
        await database.find_by_name("anyone")
    assert _sample("gateway_database_errors_total", "find_by_name") == (
        failed_before + 1
    )
    timed = _sample("gateway_database_duration_seconds_count", "find_by_name")
    assert timed == timed_before + 1


async def test_a_newer_schema_is_refused(
    database_url: str, open_database: Opener
) -> None:
    """A database migrated by a newer gateway is not silently used."""
    await (await open_database()).close()
    await _stamp_version(database_url, len(sqlite_backend.MIGRATIONS) + 1)
    with pytest.raises(DatabaseUnavailable, match="newer than this gateway"):
        await open_database()


async def test_sqlite_file_is_created_in_wal_mode(tmp_path: Path) -> None:
    """SQLite: opening creates the file and its folders, with WAL on;
    database.path and an empty url still name it."""
    path = tmp_path / "nested" / "users.db"
    database = await open_user_database(DatabaseConfig(path=str(path)))
    await database.close()

    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_postgres_replaces_connections_the_server_ended(
    postgres_url: str,
) -> None:
    """PostgreSQL: after the server ends every pooled connection, queries
    fail as DatabaseUnavailable at worst, and soon succeed again."""
    database = await open_user_database(DatabaseConfig(url=postgres_url))
    try:
        await database.create_user("Kim", "kim", "h")
        await _end_connections(postgres_url)
        failures = 0
        for _ in range(5):
            try:
                found = await database.find_by_name("kim")
            except DatabaseUnavailable:
                failures += 1
                continue
            break
        assert found is not None and failures < 5
    finally:
        await database.close()


async def test_postgres_unreachable_names_the_cause_not_the_password() -> None:
    """PostgreSQL: a server that does not answer is one DatabaseUnavailable
    with the address and the cause, and without the password."""
    url = f"postgresql://gateway:hunter2@{HOST}:{free_port()}/users"
    with pytest.raises(DatabaseUnavailable) as caught:
        await open_user_database(DatabaseConfig(url=url, busy_timeout=2))
    message = str(caught.value)
    assert message.startswith(f"cannot reach postgresql://gateway:***@{HOST}:")
    assert "Connect call failed" in message
    assert "hunter2" not in message


def test_uuid7_is_version_7_and_time_ordered() -> None:
    """Ids are RFC 9562 version 7 and sort by creation time."""
    ids = []
    for _ in range(5):
        ids.append(uuid7())
        # Different milliseconds make the order strict.
        time.sleep(0.002)
    parsed = [uuid.UUID(value) for value in ids]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in parsed)
    assert ids == sorted(ids)
    assert len(set(ids)) == 5


def _sample(name: str, operation: str) -> float:
    value = REGISTRY.get_sample_value(name, {"operation": operation})
    return value or 0.0


async def _stamp_version(database_url: str, version: int) -> None:
    """Record *version* as applied, the way each backend keeps it."""
    if database_url.startswith("sqlite:///"):
        path = database_url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as raw:
            raw.execute(f"PRAGMA user_version = {version}")
        return
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            "INSERT INTO schema_version (version) VALUES ($1)", version
        )
    finally:
        await connection.close()


async def _end_connections(database_url: str) -> None:
    """Have the server end every other connection to this test database."""
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await connection.close()

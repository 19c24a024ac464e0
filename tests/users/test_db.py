"""The user database on a real SQLite file."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
import uuid
from pathlib import Path

import pytest

from gateway.users import DatabaseUnavailable, UserDatabase, UsernameTaken, uuid7
from gateway.users.db import MIGRATIONS


async def test_new_database_is_migrated_and_in_wal_mode(tmp_path: Path) -> None:
    """Opening creates the file, the schema at the latest version, WAL on."""
    path = tmp_path / "nested" / "users.db"
    database = await UserDatabase.open(str(path))
    assert await database.schema_version() == len(MIGRATIONS)
    await database.close()

    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_users_survive_reopening(tmp_path: Path) -> None:
    """A user written before a restart is found after it."""
    path = str(tmp_path / "users.db")
    database = await UserDatabase.open(path)
    created = await database.create_user("Joe", "joe", "hash")
    await database.close()

    reopened = await UserDatabase.open(path)
    found = await reopened.find_by_name("joe")
    await reopened.close()
    assert found == created
    assert found is not None and found.username == "Joe"


async def test_uniqueness_is_enforced_by_the_database(tmp_path: Path) -> None:
    """Racing inserts of one normalized name: one row, the rest UsernameTaken."""
    database = await UserDatabase.open(str(tmp_path / "users.db"))
    results = await asyncio.gather(
        *(database.create_user(f"Ann{n}", "ann", "h") for n in range(20)),
        return_exceptions=True,
    )
    await database.close()
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert sum(isinstance(r, UsernameTaken) for r in results) == 19


async def test_racing_opens_of_a_new_file_migrate_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Gateways starting together on an empty file all open it, and only one
    of them migrates it."""
    caplog.set_level(logging.INFO, logger="gateway.database")
    path = tmp_path / "users.db"
    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA journal_mode=WAL")
    opened = await asyncio.gather(*(UserDatabase.open(str(path)) for _ in range(8)))
    versions = [await database.schema_version() for database in opened]
    for database in opened:
        await database.close()
    assert versions == [len(MIGRATIONS)] * 8
    migrated = [r for r in caplog.records if r.message == "database migrated"]
    assert len(migrated) == 1


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    """A file migrated by a newer gateway is not silently used."""
    path = tmp_path / "users.db"
    with sqlite3.connect(path) as raw:
        raw.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(DatabaseUnavailable, match="newer"):
        await UserDatabase.open(str(path))


async def test_users_are_listed_disabled_and_deleted(tmp_path: Path) -> None:
    """The listing is oldest first without hashes; disabling and deleting
    say whether there was such a user."""
    database = await UserDatabase.open(str(tmp_path / "users.db"))
    first = await database.create_user("First", "first", "h1")
    second = await database.create_user("Second", "second", "h2")

    assert await database.set_disabled(first.id, True)
    listed = await database.list_users()
    assert [(u.id, u.username, u.disabled) for u in listed] == [
        (first.id, "First", True),
        (second.id, "Second", False),
    ]
    assert await database.delete_user(first.id)
    assert not await database.delete_user(first.id)
    assert not await database.set_disabled(first.id, False)
    assert [u.id for u in await database.list_users()] == [second.id]
    await database.close()


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

"""Users in SQLite, reached through aiosqlite.

The schema is versioned with ``PRAGMA user_version`` and migrated forward at
start.  Uniqueness of names is the database's job (a UNIQUE index on the
normalized name), so concurrent registrations cannot both succeed.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

import aiosqlite

from gateway.users.base import (
    DatabaseUnavailable,
    User,
    UserDatabase,
    UsernameTaken,
    UserSummary,
    uuid7,
)

log = logging.getLogger("gateway.database")

# Each entry moves the schema from version N to N + 1, one statement at a
# time; never edit a shipped one.  postgres.py keeps the same versions.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE users (
            id            TEXT PRIMARY KEY,
            username      TEXT NOT NULL,
            username_key  TEXT NOT NULL UNIQUE,
            password_hash TEXT NOT NULL,
            created_at    INTEGER NOT NULL,
            disabled      INTEGER NOT NULL DEFAULT 0
        )
        """,
    ),
)


class SqliteUserDatabase(UserDatabase):
    """One aiosqlite connection; SQLite serializes the writes."""

    kind = "sqlite"
    # ValueError: aiosqlite raises it when the connection is closed.
    failures = (sqlite3.Error, ValueError)

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._db = connection

    @classmethod
    async def open(cls, path: str, busy_timeout: float = 5.0) -> SqliteUserDatabase:
        """Open (creating if needed) and migrate the database at *path*."""
        try:
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            connection = await aiosqlite.connect(path, isolation_level=None)
        except (sqlite3.Error, OSError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            raise DatabaseUnavailable(f"cannot open {path}: {reason}") from exc

        database = cls(connection)
        try:
            # The wait for locks comes first: switching a new file to WAL
            # takes one, and so does migrating it.
            await connection.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            await connection.execute("PRAGMA journal_mode=WAL")
            await connection.execute("PRAGMA synchronous=FULL")
            await database._migrate()
        except (sqlite3.Error, DatabaseUnavailable) as exc:
            # Closing also rolls back a migration cut short.
            await connection.close()
            raise DatabaseUnavailable(f"cannot use {path}: {exc}") from exc
        return database

    async def close(self) -> None:
        await self._db.close()

    async def schema_version(self) -> int:
        async with self._db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def create_user(
        self, username: str, username_key: str, password_hash: str
    ) -> User:
        user = User(uuid7(), username, password_hash, disabled=False)
        async with self._errors("create_user"):
            try:
                await self._db.execute(
                    "INSERT INTO users (id, username, username_key, password_hash,"
                    " created_at) VALUES (?, ?, ?, ?, ?)",
                    (user.id, username, username_key, password_hash, int(time.time())),
                )
            except sqlite3.IntegrityError:
                raise UsernameTaken(username_key) from None
        return user

    async def find_by_name(self, username_key: str) -> User | None:
        async with (
            self._errors("find_by_name"),
            self._db.execute(
                "SELECT id, username, password_hash, disabled FROM users"
                " WHERE username_key = ?",
                (username_key,),
            ) as cursor,
        ):
            row = await cursor.fetchone()
        if row is None:
            return None
        return User(str(row[0]), str(row[1]), str(row[2]), bool(row[3]))

    async def find_by_id(self, user_id: str) -> User | None:
        async with (
            self._errors("find_by_id"),
            self._db.execute(
                "SELECT id, username, password_hash, disabled FROM users WHERE id = ?",
                (user_id,),
            ) as cursor,
        ):
            row = await cursor.fetchone()
        if row is None:
            return None
        return User(str(row[0]), str(row[1]), str(row[2]), bool(row[3]))

    async def set_password(self, user_id: str, password_hash: str) -> None:
        async with self._errors("set_password"):
            await self._db.execute(
                "UPDATE users SET password_hash = ? WHERE id = ?",
                (password_hash, user_id),
            )

    async def list_users(self) -> list[UserSummary]:
        """Every user, oldest first."""
        # Ties go by rowid (insertion order), not by id: ids made within one
        # millisecond are in random order.
        async with (
            self._errors("list_users"),
            self._db.execute(
                "SELECT id, username, created_at, disabled FROM users"
                " ORDER BY created_at, rowid"
            ) as cursor,
        ):
            rows = await cursor.fetchall()
        return [
            UserSummary(str(row[0]), str(row[1]), int(row[2]), bool(row[3]))
            for row in rows
        ]

    async def delete_user(self, user_id: str) -> bool:
        """Remove the user; False when there was no such user."""
        async with (
            self._errors("delete_user"),
            self._db.execute("DELETE FROM users WHERE id = ?", (user_id,)) as cursor,
        ):
            return cursor.rowcount > 0

    async def set_disabled(self, user_id: str, disabled: bool) -> bool:
        """Refuse (or allow again) the user's logins; False when there is none."""
        async with (
            self._errors("set_disabled"),
            self._db.execute(
                "UPDATE users SET disabled = ? WHERE id = ?", (int(disabled), user_id)
            ) as cursor,
        ):
            return cursor.rowcount > 0

    async def ping(self) -> None:
        async with self._errors("ping"):
            await self._db.execute("SELECT 1")

    async def _migrate(self) -> None:
        # Reading the version takes no write lock, and a current file is the
        # usual case: opening does not wait for another process's writes.
        if await self.schema_version() == len(MIGRATIONS):
            return
        # Read again under the write lock, so that of several gateways
        # opening a new file at once exactly one migrates it and the others
        # find it done.
        await self._db.execute("BEGIN IMMEDIATE")
        current = await self.schema_version()
        if current > len(MIGRATIONS):
            raise DatabaseUnavailable(
                f"schema version {current} is newer than this gateway knows"
            )
        for version, statements in enumerate(MIGRATIONS[current:], start=current + 1):
            for statement in statements:
                await self._db.execute(statement)
            await self._db.execute(f"PRAGMA user_version = {version}")
        await self._db.execute("COMMIT")
        if current < len(MIGRATIONS):
            log.info(
                "database migrated",
                extra={"schema_version": len(MIGRATIONS), "from_version": current},
            )

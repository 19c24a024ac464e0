"""Users in PostgreSQL, reached through a pool of asyncpg connections.

This is the backend for gateways on several hosts.  The table is the one
sqlite.py keeps, and its versions are the same; they are recorded in a
``schema_version`` table.  Whichever gateway starts first migrates, under an
advisory lock, and the others find the work done.  The UNIQUE constraint on
the normalized name decides between racing registrations.
"""

from __future__ import annotations

import logging
import time
from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolAcquireContext, PoolConnectionProxy

from gateway.urls import redact_url
from gateway.users.base import (
    DatabaseUnavailable,
    User,
    UserDatabase,
    UsernameTaken,
    UserSummary,
    reason,
    uuid7,
)

log = logging.getLogger("gateway.database")

# Each entry moves the schema from version N to N + 1, as the entry with the
# same index in sqlite.py does; never edit a shipped one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE users (
        id            TEXT PRIMARY KEY,
        username      TEXT NOT NULL,
        username_key  TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        created_at    BIGINT NOT NULL,
        disabled      BOOLEAN NOT NULL DEFAULT FALSE,
        -- Insertion order, to break ties in created_at as SQLite's rowid
        -- does: ids made within one millisecond are in random order.
        position      BIGINT GENERATED ALWAYS AS IDENTITY
    );
    """,
)
SCHEMA_VERSION_TABLE = """
    CREATE TABLE IF NOT EXISTS schema_version (
        version    INTEGER PRIMARY KEY,
        applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )
"""
# The advisory lock every gateway takes to migrate: "gw-users" as a bigint.
MIGRATION_LOCK = int.from_bytes(b"gw-users", "big")

# Quoted: asyncpg's classes take no subscript at run time, only in the stubs.
Connection: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"


class PostgresUserDatabase(UserDatabase):
    """A pool of connections; PostgreSQL serializes what has to be."""

    kind = "postgres"
    failures = (
        asyncpg.PostgresError,  # from the server, connection losses included
        asyncpg.InterfaceError,  # a closed pool or connection, bad settings
        asyncpg.exceptions.InternalClientError,  # a protocol mix-up
        OSError,  # refused, reset or unreachable
        TimeoutError,  # connect, pool wait or query past the timeout
    )

    def __init__(self, pool: asyncpg.Pool[asyncpg.Record], timeout: float) -> None:
        self._pool = pool
        self._timeout = timeout

    @classmethod
    async def open(
        cls, url: str, pool_size: int = 10, busy_timeout: float = 5.0
    ) -> PostgresUserDatabase:
        """Connect to the database at *url* and migrate it.

        *busy_timeout* bounds connecting, waiting for a pooled connection and
        each query.  Failures are DatabaseUnavailable, naming the cause.
        """
        where = redact_url(url)
        try:
            pool = await asyncpg.create_pool(
                url,
                min_size=1,
                max_size=pool_size,
                timeout=busy_timeout,
                command_timeout=busy_timeout,
            )
        except cls.failures as exc:
            raise DatabaseUnavailable(f"cannot reach {where}: {reason(exc)}") from exc

        database = cls(pool, busy_timeout)
        try:
            await database._migrate()
        except (*cls.failures, DatabaseUnavailable) as exc:
            pool.terminate()
            raise DatabaseUnavailable(f"cannot use {where}: {reason(exc)}") from exc
        return database

    async def close(self) -> None:
        await self._pool.close()

    async def schema_version(self) -> int:
        async with self._errors("schema_version"), self._connection() as connection:
            return await _version(connection)

    async def create_user(
        self, username: str, username_key: str, password_hash: str
    ) -> User:
        user = User(uuid7(), username, password_hash, disabled=False)
        async with self._errors("create_user"), self._connection() as connection:
            try:
                # One statement, so committed (and durable) when it returns.
                await connection.execute(
                    "INSERT INTO users (id, username, username_key, password_hash,"
                    " created_at) VALUES ($1, $2, $3, $4, $5)",
                    user.id,
                    username,
                    username_key,
                    password_hash,
                    int(time.time()),
                )
            except asyncpg.UniqueViolationError:
                raise UsernameTaken(username_key) from None
        return user

    async def find_by_name(self, username_key: str) -> User | None:
        async with self._errors("find_by_name"), self._connection() as connection:
            row = await connection.fetchrow(
                "SELECT id, username, password_hash, disabled FROM users"
                " WHERE username_key = $1",
                username_key,
            )
        return None if row is None else _user(row)

    async def find_by_id(self, user_id: str) -> User | None:
        async with self._errors("find_by_id"), self._connection() as connection:
            row = await connection.fetchrow(
                "SELECT id, username, password_hash, disabled FROM users WHERE id = $1",
                user_id,
            )
        return None if row is None else _user(row)

    async def set_password(self, user_id: str, password_hash: str) -> None:
        async with self._errors("set_password"), self._connection() as connection:
            await connection.execute(
                "UPDATE users SET password_hash = $1 WHERE id = $2",
                password_hash,
                user_id,
            )

    async def list_users(self) -> list[UserSummary]:
        async with self._errors("list_users"), self._connection() as connection:
            rows = await connection.fetch(
                "SELECT id, username, created_at, disabled FROM users"
                " ORDER BY created_at, position"
            )
        return [
            UserSummary(str(row[0]), str(row[1]), int(row[2]), bool(row[3]))
            for row in rows
        ]

    async def delete_user(self, user_id: str) -> bool:
        async with self._errors("delete_user"), self._connection() as connection:
            deleted = await connection.fetchval(
                "DELETE FROM users WHERE id = $1 RETURNING true", user_id
            )
        return deleted is not None

    async def set_disabled(self, user_id: str, disabled: bool) -> bool:
        async with self._errors("set_disabled"), self._connection() as connection:
            updated = await connection.fetchval(
                "UPDATE users SET disabled = $1 WHERE id = $2 RETURNING true",
                disabled,
                user_id,
            )
        return updated is not None

    async def ping(self) -> None:
        async with self._errors("ping"), self._connection() as connection:
            await connection.execute("SELECT 1")

    def _connection(self) -> PoolAcquireContext[asyncpg.Record]:
        # Bounded, so that a pool held up by a slow server answers 503
        # rather than queueing requests for ever.
        return self._pool.acquire(timeout=self._timeout)

    async def _migrate(self) -> None:
        async with self._connection() as connection:
            # A current schema, the usual case, needs no lock and no DDL.
            if await _version(connection) == len(MIGRATIONS):
                return
            async with connection.transaction():
                current = await _migrate_locked(connection)
        if current < len(MIGRATIONS):
            log.info(
                "database migrated",
                extra={"schema_version": len(MIGRATIONS), "from_version": current},
            )


async def _migrate_locked(connection: Connection) -> int:
    """Migrate inside the caller's transaction; the version found first."""
    # Held until the transaction ends: gateways starting together take
    # turns, and all but the first find the schema current.
    await connection.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
    await connection.execute(SCHEMA_VERSION_TABLE)
    current = await _version(connection)
    if current > len(MIGRATIONS):
        raise DatabaseUnavailable(
            f"schema version {current} is newer than this gateway knows"
        )
    for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
        await connection.execute(script)
        await connection.execute(
            "INSERT INTO schema_version (version) VALUES ($1)", version
        )
    return current


async def _version(connection: Connection) -> int:
    # No table yet: a new database, at version 0.
    if await connection.fetchval("SELECT to_regclass('schema_version')") is None:
        return 0
    version = await connection.fetchval(
        "SELECT coalesce(max(version), 0) FROM schema_version"
    )
    return int(version)


def _user(row: asyncpg.Record) -> User:
    return User(str(row[0]), str(row[1]), str(row[2]), bool(row[3]))

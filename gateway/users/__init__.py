"""The user database: its contract, its two backends, and how one is chosen."""

from __future__ import annotations

import logging

from gateway.config import DatabaseConfig
from gateway.users.base import (
    DatabaseUnavailable,
    User,
    UserDatabase,
    UsernameTaken,
    UserSummary,
    uuid7,
)
from gateway.users.postgres import PostgresUserDatabase
from gateway.users.sqlite import SqliteUserDatabase

__all__ = [
    "DatabaseUnavailable",
    "PostgresUserDatabase",
    "SqliteUserDatabase",
    "User",
    "UserDatabase",
    "UserSummary",
    "UsernameTaken",
    "open_user_database",
    "uuid7",
]

log = logging.getLogger("gateway.database")


async def open_user_database(config: DatabaseConfig) -> UserDatabase:
    """Open and migrate the database *config* names: PostgreSQL for a
    postgresql:// URL, otherwise the SQLite file.

    Raises :class:`DatabaseUnavailable`, naming the cause, when it cannot.
    """
    database: UserDatabase
    if config.is_postgres:
        database = await PostgresUserDatabase.open(
            config.url, config.pool_size, config.busy_timeout
        )
    else:
        database = await SqliteUserDatabase.open(
            config.sqlite_path, config.busy_timeout
        )
    log.debug(
        "user database open",
        extra={"backend": database.kind, "database": config.location},
    )
    return database

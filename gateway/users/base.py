"""The user database contract that every backend keeps.

A backend stores the users, leaves the uniqueness of names to the database
itself, migrates its schema forward when opened, and turns its driver's
failures into :class:`DatabaseUnavailable`.  Choosing one is left to
``gateway.users.open_user_database``.
"""

from __future__ import annotations

import abc
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import ClassVar

from gateway import metrics

log = logging.getLogger("gateway.database")


class DatabaseUnavailable(Exception):
    """The database could not serve the request; retry later."""


class UsernameTaken(Exception):
    """Another user already has this (normalized) name."""


@dataclass(frozen=True)
class User:
    id: str
    username: str
    password_hash: str
    disabled: bool


@dataclass(frozen=True)
class UserSummary:
    """A user as an administrator sees one: no password hash."""

    id: str
    username: str
    created_at: int
    disabled: bool


def uuid7() -> str:
    """A time-ordered UUID (RFC 9562 version 7) as a string."""
    unix_ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (unix_ms & (2**48 - 1)) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 62) & 0xFFF) << 64  # 12 random bits (rand_a)
    value |= 0b10 << 62  # variant
    value |= rand & (2**62 - 1)  # 62 random bits (rand_b)
    return str(uuid.UUID(int=value))


class UserDatabase(abc.ABC):
    """Where the users live; every method may raise DatabaseUnavailable."""

    # Short name for logs: "sqlite" or "postgres".
    kind: ClassVar[str]
    # The driver's exceptions that mean "cannot serve this now".
    failures: ClassVar[tuple[type[Exception], ...]]

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def schema_version(self) -> int:
        """The number of migrations applied."""

    @abc.abstractmethod
    async def create_user(
        self, username: str, username_key: str, password_hash: str
    ) -> User:
        """Add a user; UsernameTaken when *username_key* is in use."""

    @abc.abstractmethod
    async def find_by_name(self, username_key: str) -> User | None: ...

    @abc.abstractmethod
    async def find_by_id(self, user_id: str) -> User | None: ...

    @abc.abstractmethod
    async def set_password(self, user_id: str, password_hash: str) -> None: ...

    @abc.abstractmethod
    async def list_users(self) -> list[UserSummary]:
        """Every user, oldest first (ties in the order they were added)."""

    @abc.abstractmethod
    async def delete_user(self, user_id: str) -> bool:
        """Remove the user; False when there was no such user."""

    @abc.abstractmethod
    async def set_disabled(self, user_id: str, disabled: bool) -> bool:
        """Refuse (or allow again) the user's logins; False when there is none."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Answer if the database does; for /readyz."""

    @asynccontextmanager
    async def _errors(self, operation: str) -> AsyncIterator[None]:
        """Time the query; turn driver failures into DatabaseUnavailable."""
        started = time.perf_counter()
        try:
            yield
        except UsernameTaken:
            raise
        except self.failures as exc:
            metrics.DATABASE_ERRORS.labels(operation).inc()
            log.error("database %s failed: %s", operation, reason(exc))
            # Clients never see this text; the admin command line prints it.
            raise DatabaseUnavailable(f"{operation} failed: {reason(exc)}") from exc
        finally:
            elapsed = time.perf_counter() - started
            metrics.DATABASE_SECONDS.labels(operation).observe(elapsed)


def reason(exc: BaseException) -> str:
    """*exc* as the end of an error line."""
    # A timeout's own text is empty, which would leave the line saying nothing.
    return str(exc) or type(exc).__name__

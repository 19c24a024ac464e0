"""The session store contract that every backend implements.

A session is one login: a member of the user's session set plus a small record
(the hash of the current refresh secret, times, client details).  Backends own
expiry and atomicity; callers only see the outcomes defined here.
"""

from __future__ import annotations

import abc
import enum
import time
from dataclasses import dataclass


class StoreUnavailable(Exception):
    """The store did not answer or failed; the caller should retry later."""


@dataclass(frozen=True)
class Lifetimes:
    """How long sessions live, in milliseconds."""

    idle_ms: int
    absolute_ms: int

    @classmethod
    def from_seconds(cls, idle: int, absolute: int) -> Lifetimes:
        return cls(idle_ms=idle * 1000, absolute_ms=absolute * 1000)


@dataclass(frozen=True)
class NewSession:
    user_id: str
    session_id: str
    token_hash: str
    user_agent: str
    ip: str


@dataclass(frozen=True)
class SessionInfo:
    session_id: str
    created_at_ms: int
    last_used_at_ms: int
    expires_in: int
    user_agent: str
    ip: str


class Rotation(enum.Enum):
    """What happened to a refresh attempt."""

    ROTATED = "rotated"
    # No live session with that id: never existed, expired or revoked.
    UNKNOWN = "unknown"
    # The session is live but the presented secret is not its current one.
    STALE = "stale"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def sessions_key(user_id: str) -> str:
    # The braces make the user id a hash tag, so one user's keys share a slot.
    return f"user:{{{user_id}}}:sessions"


def record_key(user_id: str, session_id: str) -> str:
    return f"user:{{{user_id}}}:session:{session_id}"


class SessionStore(abc.ABC):
    """Where sessions live; every method is one atomic step on the store."""

    kind: str

    def __init__(self, lifetimes: Lifetimes) -> None:
        self.lifetimes = lifetimes

    @abc.abstractmethod
    async def create(self, session: NewSession) -> int:
        """Add a session with its expiry; return that expiry in epoch ms."""

    @abc.abstractmethod
    async def rotate(
        self, user_id: str, session_id: str, presented_hash: str, new_hash: str
    ) -> Rotation:
        """Swap the refresh hash if *presented_hash* is current; extend life."""

    @abc.abstractmethod
    async def revoke(
        self, user_id: str, session_id: str, token_hash: str | None = None
    ) -> bool:
        """End a session (only if *token_hash* is current, when given)."""

    @abc.abstractmethod
    async def remaining(self, user_id: str, session_id: str) -> int | None:
        """Seconds the session has left, or None when it is gone."""

    @abc.abstractmethod
    async def list_sessions(self, user_id: str) -> list[SessionInfo]:
        """The user's live sessions, oldest first."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise :class:`StoreUnavailable` unless the store answers."""

    async def close(self) -> None:  # noqa: B027 - optional for backends
        """Release connections."""

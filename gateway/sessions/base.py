"""The session store contract that every backend implements.

A session is one login: a member of the user's session set plus a record
holding the hash of its current (and previous) refresh secret, its times and
the client's details.  Backends own expiry and atomicity: every method that
changes a user's sessions is one atomic step.  They also carry the revocation
feed that tells every gateway which sessions have ended.
"""

from __future__ import annotations

import abc
import asyncio
import enum
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

RevocationHandler = Callable[[str, int], None]

# Separates the fields of a stored record; the user agent comes last and is
# the only field that may contain it.
RECORD_SEPARATOR = "|"


class StoreUnavailable(Exception):
    """The store did not answer or failed; the caller should retry later."""


@dataclass(frozen=True)
class SessionPolicy:
    """Lifetimes in milliseconds, the reuse grace window and the cap."""

    idle_ms: int
    absolute_ms: int
    grace_ms: int = 0
    # Within the grace window, answer the previous token with its successor
    # (True) or refuse it without ending the session (False).
    reissue_in_grace: bool = False
    max_per_user: int = 0

    @classmethod
    def from_seconds(
        cls,
        idle: int,
        absolute: int,
        grace: float = 0,
        reissue_in_grace: bool = False,
        max_per_user: int = 0,
    ) -> SessionPolicy:
        return cls(
            idle * 1000,
            absolute * 1000,
            int(grace * 1000),
            reissue_in_grace,
            max_per_user,
        )


@dataclass(frozen=True)
class NewSession:
    user_id: str
    session_id: str
    token_hash: str
    user_agent: str
    ip: str


@dataclass(frozen=True)
class Created:
    expires_at_ms: int
    # Sessions removed to stay within the per-user cap.
    evicted: tuple[str, ...] = ()


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
    # The previous secret again, inside the grace window, and the successor
    # the caller would mint is the current one: answer with it again.
    RETRIED = "retried"
    # The same, with reissuing turned off: refused, but the session lives on
    # (a duplicate or lost-response retry, not evidence of a copied token).
    SUPERSEDED = "superseded"
    # The previous secret outside the grace window: the token was copied.
    # The session has been ended.
    REUSED = "reused"
    # No live session for it: never existed, expired, revoked or forged.
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Record:
    """A session's stored record, as the Lua scripts read and write it."""

    token_hash: str
    previous_hash: str
    rotated_at_ms: int
    created_at_ms: int
    last_used_at_ms: int
    absolute_ms: int
    ip: str
    user_agent: str

    def encode(self) -> str:
        return RECORD_SEPARATOR.join(
            [
                self.token_hash,
                self.previous_hash,
                str(self.rotated_at_ms),
                str(self.created_at_ms),
                str(self.last_used_at_ms),
                str(self.absolute_ms),
                self.ip,
                self.user_agent,
            ]
        )

    @classmethod
    def decode(cls, text: str) -> Record | None:
        """The record, or None when the stored text is not one (treated as gone)."""
        fields = text.split(RECORD_SEPARATOR, 7)
        if len(fields) != 8:
            return None
        try:
            rotated, created, used, absolute = (int(v) for v in fields[2:6])
        except ValueError:
            return None
        return cls(
            token_hash=fields[0],
            previous_hash=fields[1],
            rotated_at_ms=rotated,
            created_at_ms=created,
            last_used_at_ms=used,
            absolute_ms=absolute,
            ip=fields[6],
            user_agent=fields[7],
        )


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def sessions_key(user_id: str) -> str:
    # The braces make the user id a hash tag, so one user's keys share a slot.
    return f"user:{{{user_id}}}:sessions"


def records_key(user_id: str) -> str:
    return f"user:{{{user_id}}}:records"


def throttle_key(key: str) -> str:
    return f"throttle:{key}"


class SessionStore(abc.ABC):
    """Where sessions live; every method is one atomic step on the store."""

    kind: str

    def __init__(self, policy: SessionPolicy) -> None:
        self.policy = policy
        # Whether revocations from other gateways are arriving right now.
        self.feed_live = False

    @abc.abstractmethod
    async def create(self, session: NewSession) -> Created:
        """Add a session with its expiry, evicting past the per-user cap."""

    @abc.abstractmethod
    async def rotate(
        self,
        user_id: str,
        session_id: str,
        presented_hash: str,
        successor_hash: str,
        in_doubt: bool = False,
    ) -> Rotation:
        """Replace the refresh hash if *presented_hash* is current.

        *in_doubt* says an earlier rotation of this very hash failed without
        an answer here, so finding it already replaced by *successor_hash*
        is a retry to answer (RETRIED), not a reuse.
        """

    @abc.abstractmethod
    async def revoke(
        self, user_id: str, session_id: str, token_hash: str | None = None
    ) -> bool:
        """End a session (only if *token_hash* is current, when given)."""

    @abc.abstractmethod
    async def revoke_all(self, user_id: str, keep: str | None = None) -> list[str]:
        """End every session of the user but *keep*; return the ended ids."""

    @abc.abstractmethod
    async def remaining(self, user_id: str, session_id: str) -> int | None:
        """Seconds the session has left, or None when it is gone."""

    @abc.abstractmethod
    async def list_sessions(self, user_id: str) -> list[SessionInfo]:
        """The user's live sessions, oldest first."""

    @abc.abstractmethod
    async def publish_revocations(
        self, session_ids: Sequence[str], until_ms: int
    ) -> None:
        """Tell every gateway that these sessions ended, until *until_ms*."""

    @abc.abstractmethod
    async def follow_revocations(
        self, on_revoked: RevocationHandler, ready: asyncio.Event | None = None
    ) -> None:
        """Deliver every published revocation, including those published
        while this gateway was away, setting *ready* once those are in;
        runs until cancelled."""

    @abc.abstractmethod
    async def throttle(self, key: str, capacity: int, refill_s: int) -> int:
        """Count one attempt against *key*'s bucket (GCRA: *capacity* at
        once, one more every *refill_s*).  Return 0 when it is allowed, else
        the seconds until one would be; a refused attempt is not counted."""

    @abc.abstractmethod
    async def unthrottle(self, key: str) -> None:
        """Forget *key*'s attempts (after a success)."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise :class:`StoreUnavailable` unless the store answers."""

    async def close(self) -> None:  # noqa: B027 - optional for backends
        """Release connections."""


def sessions_from_listing(
    rows: Sequence[tuple[str, int, str]],
) -> list[SessionInfo]:
    """SessionInfo for each (id, seconds left, record text), oldest first."""
    sessions = []
    for session_id, expires_in, text in rows:
        record = Record.decode(text)
        if record is None or expires_in <= 0:
            continue
        sessions.append(
            SessionInfo(
                session_id=session_id,
                created_at_ms=record.created_at_ms,
                last_used_at_ms=record.last_used_at_ms,
                expires_in=expires_in,
                user_agent=record.user_agent,
                ip=record.ip,
            )
        )
    return sorted(sessions, key=lambda info: info.created_at_ms)

"""The local list of ended sessions whose access tokens must be refused.

Access tokens are checked without the store, so ending a session cannot
reach them directly.  Every gateway keeps this in-memory map of session id to
the moment the last access token issued for it expires, filled from the
store's revocation feed; past that moment the entry is useless and dropped.
"""

from __future__ import annotations

from gateway import metrics
from gateway.sessions.base import now_ms


class RevokedSessions:
    def __init__(self) -> None:
        self._until: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._until)

    def add(self, session_id: str, until_ms: int) -> None:
        if until_ms > self._until.get(session_id, 0):
            self._until[session_id] = until_ms
            metrics.REVOKED_SESSIONS.set(len(self._until))

    def is_revoked(self, session_id: str) -> bool:
        until = self._until.get(session_id)
        if until is None:
            return False
        if until <= now_ms():
            del self._until[session_id]
            return False
        return True

    def prune(self) -> None:
        now = now_ms()
        expired = [sid for sid, until in self._until.items() if until <= now]
        for session_id in expired:
            del self._until[session_id]
        metrics.REVOKED_SESSIONS.set(len(self._until))

"""Access tokens (short-lived JWTs) and refresh tokens (opaque, stored hashed).

An access token is checked by computation alone, so the proxy never asks the
store.  A refresh token is ``<user id>__<session id>.<secret>``: the user and
session ids say where to look, and only a SHA-256 of the 256-bit secret is
stored, so a copy of the store cannot be turned back into a working token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

import jwt

from gateway.errors import Unauthorized

ALGORITHM = "HS256"
MAX_TOKEN_LENGTH = 4096
_REFRESH_PATTERN = re.compile(
    r"(?P<user>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
    r"__(?P<session>[0-9a-f]{32})\.(?P<secret>[A-Za-z0-9_-]{43})"
)


@dataclass(frozen=True)
class AccessClaims:
    user_id: str
    session_id: str
    expires_at: int


class AccessTokens:
    """Issues and verifies HS256 access tokens with the algorithm pinned."""

    def __init__(self, secret: str, ttl: int) -> None:
        self._key = secret.encode("utf-8")
        self.ttl = ttl

    def issue(self, user_id: str, session_id: str) -> str:
        issued = int(time.time())
        claims = {"sub": user_id, "sid": session_id, "iat": issued}
        claims["exp"] = issued + self.ttl
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def verify(self, token: str) -> AccessClaims:
        """Return the claims of a valid token or raise :class:`Unauthorized`."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise Unauthorized("invalid access token", error="invalid_token")
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                options={"require": ["exp", "iat", "sub", "sid"]},
            )
        except jwt.InvalidTokenError:
            raise Unauthorized("invalid access token", error="invalid_token") from None
        user_id, session_id = claims.get("sub"), claims.get("sid")
        if not isinstance(user_id, str) or not isinstance(session_id, str):
            raise Unauthorized("invalid access token", error="invalid_token")
        return AccessClaims(user_id, session_id, int(claims["exp"]))


@dataclass(frozen=True)
class RefreshToken:
    user_id: str
    session_id: str
    secret: str

    @classmethod
    def new(cls, user_id: str) -> RefreshToken:
        """The first token of a new session."""
        return cls(user_id, secrets.token_hex(16), secrets.token_urlsafe(32))

    def successor(self, key: bytes) -> RefreshToken:
        """The token that replaces this one on rotation.

        It is derived (HMAC with a server key), not drawn at random, so a
        client retrying a refresh whose answer it lost is given the same
        successor again instead of a second live token.  Without the key,
        a stolen token does not tell anyone its successor.
        """
        message = f"{self.user_id}:{self.session_id}:{self.secret}".encode()
        digest = hmac.new(key, message, hashlib.sha256).digest()
        secret = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
        return RefreshToken(self.user_id, self.session_id, secret)

    @classmethod
    def parse(cls, text: str) -> RefreshToken | None:
        match = _REFRESH_PATTERN.fullmatch(text)
        if match is None:
            return None
        return cls(match["user"], match["session"], match["secret"])

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.secret.encode("ascii")).hexdigest()

    def __str__(self) -> str:
        return f"{self.user_id}__{self.session_id}.{self.secret}"


def rotation_key(jwt_secret: str) -> bytes:
    """The server key for successor tokens, kept apart from the JWT key."""
    return hmac.new(
        jwt_secret.encode("utf-8"), b"refresh-token-rotation", hashlib.sha256
    ).digest()


def bearer_token(authorization: str | None) -> str | None:
    """The credentials of an ``Authorization: Bearer`` header (RFC 6750 2.1)."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    credentials = credentials.strip()
    return credentials or None


class PendingRotations:
    """Refreshes that failed here without an answer from the store.

    The store may still have applied such a rotation, leaving the client
    holding a token that is now the previous one.  Remembering the attempt
    lets this gateway answer the client's retry with the successor it is
    owed, instead of taking the retry for reuse of a copied token.
    """

    def __init__(self, ttl_s: float = 600, limit: int = 10_000) -> None:
        self._ttl = ttl_s
        self._limit = limit
        self._until: dict[tuple[str, str], float] = {}

    def add(self, token: RefreshToken) -> None:
        now = time.monotonic()
        if len(self._until) >= self._limit:
            self._until = {k: t for k, t in self._until.items() if t > now}
        if len(self._until) < self._limit:
            self._until[(token.session_id, token.hash)] = now + self._ttl

    def holds(self, token: RefreshToken) -> bool:
        until = self._until.get((token.session_id, token.hash))
        return until is not None and until > time.monotonic()

    def discard(self, token: RefreshToken) -> None:
        self._until.pop((token.session_id, token.hash), None)

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
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt

from gateway.auth.signing import KeyRing
from gateway.config import JwtConfig
from gateway.errors import Unauthorized

# Purpose label for the key that derives successor refresh tokens.
ROTATION_PURPOSE = b"refresh-token-rotation"
ASSERTION_TTL = 60
# Verified access tokens remembered at once; about 300 bytes each.
VERIFIED_CACHE_SIZE = 10_000

_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# Header parameters that ask the verifier to fetch or trust a key from the
# token itself (RFC 7515 4.1); nothing here ever does, so they are refused.
_REFUSED_HEADERS = frozenset({"jku", "jwk", "x5u", "x5c", "crit"})
_REQUIRED_CLAIMS = ["exp", "iat", "sub", "sid"]
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
    """Issues access tokens and verifies them with the algorithm pinned."""

    def __init__(self, keys: KeyRing, config: JwtConfig) -> None:
        self.keys = keys
        self.ttl = config.access_ttl
        self._issuer = config.issuer or None
        self._audience = config.audience or None
        self._leeway = config.leeway
        self._max_bytes = config.max_token_bytes
        self._headers = {"kid": keys.signing_kid} if keys.signing_kid else None
        # Tokens that passed verification, until they expire.
        self._verified: dict[str, AccessClaims] = {}

    def issue(self, user_id: str, session_id: str) -> str:
        issued = int(time.time())
        claims: dict[str, object] = {
            "sub": user_id,
            "sid": session_id,
            "iat": issued,
            "exp": issued + self.ttl,
        }
        if self._issuer:
            claims["iss"] = self._issuer
        if self._audience:
            claims["aud"] = self._audience
        return jwt.encode(
            claims,
            self.keys.signing_key,
            algorithm=self.keys.algorithm,
            headers=self._headers,
        )

    def verify(self, token: str) -> AccessClaims:
        """Return the claims of a valid token or raise :class:`Unauthorized`.

        A token verified once is remembered until it expires, so the many
        requests a client makes with one token cost a dict lookup each; the
        clock is still checked on every hit, and revocation is checked by the
        caller on every request whether the token was remembered or not.
        """
        cached = self._verified.get(token)
        if cached is not None:
            if cached.expires_at + self._leeway >= time.time():
                return cached
            del self._verified[token]
        claims = self._verify_signed(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            # Oldest first: dicts keep insertion order.
            del self._verified[next(iter(self._verified))]
        self._verified[token] = claims
        return claims

    def _verify_signed(self, token: str) -> AccessClaims:
        key = self._key_for(token)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[self.keys.algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": self._required()},
            )
        except jwt.InvalidTokenError:
            raise _invalid() from None
        user_id, session_id = claims.get("sub"), claims.get("sid")
        if not isinstance(user_id, str) or not isinstance(session_id, str):
            raise _invalid()
        return AccessClaims(user_id, session_id, int(claims["exp"]))

    def _key_for(self, token: str) -> Any:
        """The verifying key, after checks PyJWT leaves to its callers: the
        exact base64url shape, no duplicate JSON members, the pinned
        algorithm, and a ``kid`` that names one of our keys."""
        if len(token) > self._max_bytes or not _TOKEN_SHAPE.fullmatch(token):
            raise _invalid()
        header_part, payload_part, _ = token.split(".")
        header = _strict_json(header_part)
        if _strict_json(payload_part) is None or header is None:
            raise _invalid()
        if header.get("alg") != self.keys.algorithm:
            raise _invalid()
        if _REFUSED_HEADERS & header.keys():
            raise _invalid()
        if self.keys.algorithm == "HS256":
            return self.keys.verifying[""]
        kid = header.get("kid")
        key = self.keys.verifying.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise _invalid()
        return key

    def assertion(
        self, audience: str, user_id: str | None, method: str, path: str
    ) -> str:
        """A 60-second proof, for one upstream, that this request passed here.

        It names the method and raw path, so it cannot be replayed against
        another endpoint; upstreams verify it with the published keys.
        """
        issued = int(time.time())
        claims: dict[str, object] = {
            "iss": self._issuer or "session-gateway",
            "aud": audience,
            "iat": issued,
            "exp": issued + ASSERTION_TTL,
            "jti": secrets.token_hex(16),
            "htm": method,
            "htp": path,
        }
        if user_id is not None:
            claims["sub"] = user_id
        headers = {"typ": "gateway-assertion+jwt", **(self._headers or {})}
        return jwt.encode(
            claims,
            self.keys.signing_key,
            algorithm=self.keys.algorithm,
            headers=headers,
        )

    def _required(self) -> list[str]:
        extra = (["iss"] if self._issuer else []) + (["aud"] if self._audience else [])
        return _REQUIRED_CLAIMS + extra


def _invalid() -> Unauthorized:
    return Unauthorized("invalid access token", error="invalid_token")


def _strict_json(segment: str) -> dict[str, Any] | None:
    """A base64url JSON object with no repeated member, or None."""
    if len(segment) % 4 == 1:
        return None
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = json.loads(raw, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    names = [name for name, _ in pairs]
    if len(names) != len(set(names)):
        raise ValueError("repeated member")
    return dict(pairs)


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

"""The gateway's configuration: its sections, keys and defaults.

The YAML file gives the base values, ``GATEWAY_<SECTION>_<KEY>`` environment
variables override them, and every problem is reported as one
:class:`ConfigError` whose message names the offending key; the reading and
checking live in :mod:`gateway.config_loader`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.urls import redact_url

ENV_PREFIX = "GATEWAY_"
# Environment variables with the prefix that are not configuration keys.
ENV_RESERVED = frozenset({"GATEWAY_CONFIG"})
MIN_HS256_SECRET_BYTES = 32
STORE_SCHEMES = frozenset(
    {
        "redis",
        "rediss",
        "redis+cluster",
        "rediss+cluster",
        "redis+sentinel",
        "rediss+sentinel",
        "unix",
        "memory",
    }
)
# database.url: sqlite:///PATH names a file (relative after three slashes,
# absolute after four); these schemes name a PostgreSQL server.
SQLITE_PREFIX = "sqlite:///"
POSTGRES_SCHEMES = frozenset({"postgresql", "postgres"})
STRINGS = tuple[str, ...]
JWT_ALGORITHMS = ("HS256", "EdDSA", "RS256")


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key."""


@dataclass(frozen=True)
class ListenConfig:
    host: str = "0.0.0.0"  # noqa: S104 - a gateway listens for the network
    port: int = 8080
    # Peers (addresses or CIDR ranges) whose X-Forwarded-* headers are believed.
    trusted_proxies: tuple[str, ...] = ()
    # Seconds that requests in flight may take to finish after SIGTERM.
    shutdown_grace: float = 10.0
    # Processes sharing the port; 0 means one per core.  The memory store
    # always runs one.
    workers: int = 0


@dataclass(frozen=True)
class UpstreamConfig:
    url: str = "http://127.0.0.1:9000"
    timeout: float = 30.0
    connect_timeout: float = 5.0
    # Largest request body in bytes passed upstream (413 past it); 0: no limit.
    max_body: int = 0
    # Pass the client's Authorization header upstream (off: it stays here).
    forward_authorization: bool = False
    # Send X-Gateway-Assertion, a short-lived JWT signed with the gateway's
    # key, so the upstream can prove a request came through the gateway.
    assertion: bool = False
    # Its audience; empty means the upstream URL.
    assertion_audience: str = ""


@dataclass(frozen=True)
class RouteConfig:
    """Requests whose path starts with *prefix* (longest prefix wins)."""

    prefix: str
    upstream: str
    timeout: float
    connect_timeout: float
    max_body: int
    forward_authorization: bool
    assertion: bool
    assertion_audience: str
    # Public routes need no token; identity headers are still stripped.
    public: bool = False


@dataclass(frozen=True)
class StoreConfig:
    url: str = "redis://localhost:6380/0"
    timeout: float = 2.0


@dataclass(frozen=True)
class DatabaseConfig:
    # Empty: the SQLite file at *path*.  Otherwise sqlite:///PATH, or
    # postgresql://user:password@host:port/name for PostgreSQL.
    url: str = ""
    path: str = "./data/users.db"
    # Seconds to wait for a lock held by another writer before 503; on
    # PostgreSQL also for a connection and for each query.
    busy_timeout: float = 5.0
    # PostgreSQL only: connections each gateway process keeps, at most.
    pool_size: int = 10

    @property
    def is_postgres(self) -> bool:
        return url_scheme(self.url) in POSTGRES_SCHEMES

    @property
    def sqlite_path(self) -> str:
        """The SQLite file: from a sqlite:/// URL, else *path*."""
        if self.url.startswith(SQLITE_PREFIX):
            return self.url[len(SQLITE_PREFIX) :]
        return self.path

    @property
    def location(self) -> str:
        """Where the users are, fit for logs: never with a password."""
        return redact_url(self.url) if self.is_postgres else self.sqlite_path


@dataclass(frozen=True)
class JwtConfig:
    # HS256 signs with the shared secret; EdDSA and RS256 with a private key
    # whose public half is published at /.well-known/jwks.json.
    algorithm: str = "HS256"
    secret: str = field(default="", repr=False)
    private_key_file: str = ""
    # The PEM text itself, for GATEWAY_JWT_PRIVATE_KEY; wins over the file.
    private_key: str = field(default="", repr=False)
    # Earlier signing keys (PEM, public or private) still accepted until the
    # last token they signed has expired.
    verify_key_files: tuple[str, ...] = ()
    issuer: str = ""
    audience: str = ""
    # Seconds of clock difference tolerated on exp, nbf and iat.
    leeway: float = 5.0
    max_token_bytes: int = 4096
    access_ttl: int = 900


@dataclass(frozen=True)
class SessionsConfig:
    idle_ttl: int = 604800
    absolute_ttl: int = 2592000
    # Seconds after a rotation in which the replaced refresh token is not
    # taken for a copy (no session revocation); later use revokes the session.
    reuse_grace: float = 5.0
    # Within reuse_grace, answer the replaced token with the same successor
    # pair (for clients that lose responses) instead of 401.
    reissue_in_grace: bool = False
    # Live sessions per user; the least recently used goes past it. 0: no cap.
    max_per_user: int = 0


@dataclass(frozen=True)
class AdminConfig:
    """The operators' listener: /healthz, /readyz, /metrics."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 9090


@dataclass(frozen=True)
class AccountsConfig:
    username_min: int = 3
    username_max: int = 64
    # Characters a name may hold besides letters and digits (any script).
    username_punctuation: str = "._-@+"
    password_min: int = 8
    password_max: int = 1024
    bcrypt_cost: int = 12
    # Threads that run bcrypt; 0 means one less than the CPU count.
    hash_workers: int = 0
    # Hash jobs allowed to wait for a thread before new ones get a 503.
    hash_queue: int = 64


@dataclass(frozen=True)
class ThrottleConfig:
    """Failed logins allowed before 429: per username from one address, and
    per address across usernames.  Buckets refill one attempt at a time."""

    enabled: bool = True
    login_attempts: int = 10
    login_refill: int = 30
    address_attempts: int = 100
    address_refill: int = 3


@dataclass(frozen=True)
class LimitsConfig:
    json_body: int = 16384


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    format: str = "json"


@dataclass(frozen=True)
class Config:
    listen: ListenConfig = ListenConfig()
    upstream: UpstreamConfig = UpstreamConfig()
    store: StoreConfig = StoreConfig()
    database: DatabaseConfig = DatabaseConfig()
    jwt: JwtConfig = JwtConfig()
    sessions: SessionsConfig = SessionsConfig()
    admin: AdminConfig = AdminConfig()
    accounts: AccountsConfig = AccountsConfig()
    limits: LimitsConfig = LimitsConfig()
    throttle: ThrottleConfig = ThrottleConfig()
    log: LogConfig = LogConfig()
    # Extra upstreams and public paths; file only.  Everything else goes to
    # upstream.url and needs a token.
    routes: tuple[RouteConfig, ...] = ()


def load_config(
    path: str | os.PathLike[str] | None, environ: Mapping[str, str] | None = None
) -> Config:
    """Read the file at *path* (if any), apply overrides and validate.

    Raises :class:`ConfigError` naming the key at fault.
    """
    from gateway.config_loader import load

    return load(path, environ)


def url_scheme(url: str) -> str:
    """The URL's scheme, lower-cased; empty when it has none."""
    scheme, separator, _ = url.partition("://")
    return scheme.lower() if separator else ""

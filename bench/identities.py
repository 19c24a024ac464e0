"""Users, sessions and tokens for a run, made the way the gateway makes them.

Users are written straight into the gateway's SQLite database through its own
``UserDatabase``, with hashes from its own ``PasswordHasher``: registering
11,000 users through the API at bcrypt cost 12 would take most of an hour
on one hashing thread, and registration is not what is measured.  Sessions
are real logins through a gateway.
"""

from __future__ import annotations

import asyncio
import secrets
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import bcrypt
import jwt

from gateway.auth.passwords import PasswordHasher, bcrypt_input
from gateway.auth.policy import username_key
from gateway.users import uuid7
from gateway.users.sqlite import SqliteUserDatabase

# One password for every bench user; the throttle and bcrypt do not care.
PASSWORD = "correct horse battery staple"  # noqa: S105 - a bench fixture
USER_AGENT = "gateway-bench/1"
ACCESS_TTL_S = 900


@dataclass(frozen=True)
class LoggedIn:
    """What one login returned."""

    access_token: str
    refresh_token: str


def user_name(prefix: str, index: int) -> str:
    # Keep in step with bench/lua/login.lua, which builds the same names.
    return f"{prefix}{index:05d}"


def client_address(index: int) -> str:
    """User *index*'s address in 198.18.0.0/15 (RFC 2544, for benchmarks);
    bench/lua/login.lua computes the same one."""
    return f"198.18.{index // 250}.{index % 250 + 1}"


def mint_access_tokens(secret: str, count: int) -> list[str]:
    """Valid HS256 access tokens with the gateway's claims, as it would
    issue them: sub (a UUIDv7), sid (128 random bits in hex), iat, exp."""
    issued = int(time.time())
    return [
        jwt.encode(
            {
                "sub": uuid7(),
                "sid": secrets.token_hex(16),
                "iat": issued,
                "exp": issued + ACCESS_TTL_S,
            },
            secret,
            algorithm="HS256",
        )
        for _ in range(count)
    ]


async def create_users(
    database: Path, groups: Sequence[tuple[str, int, int]]
) -> dict[int, str]:
    """Add users ``(prefix, count, bcrypt cost)``; returns a hash per cost.

    Every user of one cost shares one hash: it takes a single bcrypt run,
    and a login checks it just as long as it would a hash of its own.
    """
    hashes: dict[int, str] = {}
    users = await SqliteUserDatabase.open(str(database))
    try:
        for prefix, count, cost in groups:
            if cost not in hashes:
                hasher = PasswordHasher(cost, workers=1)
                hashes[cost] = await hasher.hash(PASSWORD)
                hasher.close()
            for index in range(1, count + 1):
                name = user_name(prefix, index)
                await users.create_user(name, username_key(name), hashes[cost])
    finally:
        await users.close()
    return hashes


async def log_in(
    base_url: str, prefix: str, indices: Sequence[int], concurrency: int = 24
) -> list[LoggedIn]:
    """Log each user in once through the gateway at *base_url*."""
    results: list[LoggedIn | None] = [None] * len(indices)
    position = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(base_url, connector=connector) as client:

        async def worker() -> None:
            nonlocal position
            while position < len(indices):
                slot, position = position, position + 1
                results[slot] = await _log_in_one(client, prefix, indices[slot])

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return [result for result in results if result is not None]


async def _log_in_one(
    client: aiohttp.ClientSession, prefix: str, index: int
) -> LoggedIn:
    body = {"username": user_name(prefix, index), "password": PASSWORD}
    headers = {"X-Forwarded-For": client_address(index), "User-Agent": USER_AGENT}
    async with client.post("/user/login", json=body, headers=headers) as response:
        if response.status != 200:
            text = await response.text()
            raise RuntimeError(f"login {index} answered {response.status}: {text}")
        pair = await response.json()
    return LoggedIn(str(pair["access_token"]), str(pair["refresh_token"]))


def checkpw_seconds(hashed: str, runs: int = 5) -> float:
    """Median time of one bcrypt check of the bench password, in this
    process, on an otherwise idle machine."""
    password = bcrypt_input(PASSWORD)
    stored = hashed.encode("ascii")
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        bcrypt.checkpw(password, stored)
        times.append(time.perf_counter() - started)
    return statistics.median(times)

"""Session storage: the contract, its backends, and how one is chosen."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from redis import asyncio as aioredis

from gateway.sessions.base import (
    Created,
    NewSession,
    Rotation,
    SessionInfo,
    SessionPolicy,
    SessionStore,
    StoreUnavailable,
)
from gateway.sessions.dragonfly import DragonflySessionStore
from gateway.sessions.memory import MemorySessionStore
from gateway.sessions.redis import RedisSessionStore, store_errors
from gateway.sessions.revocations import RevokedSessions
from gateway.urls import redact_url

__all__ = [
    "Created",
    "NewSession",
    "RevokedSessions",
    "Rotation",
    "SessionInfo",
    "SessionPolicy",
    "SessionStore",
    "StoreUnavailable",
    "open_store",
    "redact_url",
]

log = logging.getLogger("gateway.store")


async def open_store(
    url: str, command_timeout: float, policy: SessionPolicy
) -> SessionStore:
    """Connect to the store at *url* and pick the backend the server calls for.

    Raises :class:`StoreUnavailable` when the server does not answer.
    """
    if urlsplit(url).scheme == "memory":
        return MemorySessionStore(policy)

    client = aioredis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=command_timeout,
        socket_connect_timeout=command_timeout,
        health_check_interval=30,
    )
    try:
        async with store_errors("connect"):
            info = await client.info("server")
    except StoreUnavailable:
        await client.aclose()
        raise

    store: SessionStore
    if "dragonfly_version" in info:
        store = DragonflySessionStore(client, policy)
        version = info["dragonfly_version"]
    else:
        store = RedisSessionStore(client, policy)
        version = info.get("redis_version", "unknown")
    log.info(
        "session store connected",
        extra={"backend": store.kind, "version": str(version), "url": redact_url(url)},
    )
    return store

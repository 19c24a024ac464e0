"""Session storage: the contract, its backends, and how one is chosen."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import unquote, urlsplit

from redis import asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import Sentinel

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
from gateway.sessions.redis import RedisSessionStore, StoreClient, store_errors
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
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        return MemorySessionStore(policy)

    client: StoreClient
    if scheme.endswith("+cluster"):
        client = _cluster_client(url, command_timeout)
    elif scheme.endswith("+sentinel"):
        client = _sentinel_client(url, command_timeout)
    else:
        client = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=command_timeout,
            socket_connect_timeout=command_timeout,
            health_check_interval=30,
        )
    try:
        async with store_errors("connect"):
            info = await _server_info(client)
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


def cluster_nodes(url: str) -> list[tuple[str, int]]:
    """The host:port pairs of ``redis+cluster://[user:pass@]h1:p1,h2:p2/``."""
    netloc = url.split("://", 1)[1].split("/", 1)[0].rpartition("@")[2]
    nodes = []
    for entry in netloc.split(","):
        host, _, port = entry.strip().rpartition(":")
        nodes.append((host.strip("[]") or "localhost", int(port or 6379)))
    return nodes


def _cluster_client(url: str, command_timeout: float) -> RedisCluster:
    """A Redis Cluster (or Dragonfly cluster) client; a user's keys share a
    hash tag, so every script still runs on one node."""
    parts = urlsplit(url.split(",", 1)[0])
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in cluster_nodes(url)],
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        ssl=parts.scheme.startswith("rediss"),
        decode_responses=True,
        socket_timeout=command_timeout,
        socket_connect_timeout=command_timeout,
    )


def _sentinel_client(url: str, command_timeout: float) -> aioredis.Redis:
    """A client for the primary that the sentinels name, following it when
    they fail over: ``redis+sentinel://h1:p1,h2:p2/<service>[/<db>]``."""
    parts = urlsplit(url.split(",", 1)[0])
    service, _, database = url.split("://", 1)[1].partition("/")[2].partition("/")
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": command_timeout,
        "socket_connect_timeout": command_timeout,
        "ssl": parts.scheme.startswith("rediss"),
    }
    sentinel = Sentinel(cluster_nodes(url), sentinel_kwargs=options, **options)
    client: aioredis.Redis = sentinel.master_for(
        service,
        db=int(database or 0),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        **options,
    )
    return client


async def _server_info(client: StoreClient) -> dict[str, Any]:
    if isinstance(client, RedisCluster):
        info = await client.info("server", target_nodes=RedisCluster.RANDOM)
    else:
        info = await client.info("server")
    return dict(info)

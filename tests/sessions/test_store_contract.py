"""The session store contract, run against every backend available here."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import cast

import pytest
from redis import asyncio as aioredis

from gateway.auth.tokens import RefreshToken
from gateway.sessions import (
    Lifetimes,
    NewSession,
    Rotation,
    SessionStore,
    StoreUnavailable,
    open_store,
)
from gateway.sessions.base import record_key, sessions_key
from gateway.users import uuid7
from tests.servers import free_port

StoreFactory = Callable[..., Awaitable[SessionStore]]
LONG = Lifetimes.from_seconds(idle=3600, absolute=7200)


@pytest.fixture
async def make_store(store_url: str) -> AsyncIterator[StoreFactory]:
    opened: list[SessionStore] = []

    async def make(lifetimes: Lifetimes = LONG) -> SessionStore:
        store = await open_store(store_url, 2.0, lifetimes)
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


def hashed(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def start(store: SessionStore, user_id: str | None = None) -> RefreshToken:
    token = RefreshToken.new(user_id or uuid7())
    await store.create(
        NewSession(token.user_id, token.session_id, token.hash, "test-agent", "::1")
    )
    return token


async def test_created_session_is_listed_with_its_expiry(
    make_store: StoreFactory,
) -> None:
    """A new session shows up with its details and an idle-ttl expiry."""
    store = await make_store()
    token = await start(store)

    remaining = await store.remaining(token.user_id, token.session_id)
    assert remaining is not None and 3595 <= remaining <= 3600
    (info,) = await store.list_sessions(token.user_id)
    assert info.session_id == token.session_id
    assert info.user_agent == "test-agent"
    assert info.ip == "::1"
    assert info.created_at_ms == info.last_used_at_ms


async def test_rotation_accepts_only_the_current_secret(
    make_store: StoreFactory,
) -> None:
    """The current hash rotates once; the old one is stale from then on."""
    store = await make_store()
    token = await start(store)
    uid, sid = token.user_id, token.session_id

    assert await store.rotate(uid, sid, token.hash, hashed("two")) is Rotation.ROTATED
    assert await store.rotate(uid, sid, token.hash, hashed("x")) is Rotation.STALE
    assert (
        await store.rotate(uid, sid, hashed("two"), hashed("three")) is Rotation.ROTATED
    )
    assert await store.rotate(uid, "f" * 32, token.hash, hashed("y")) is (
        Rotation.UNKNOWN
    )


async def test_concurrent_rotations_have_one_winner(make_store: StoreFactory) -> None:
    """Thirty racing rotations of one secret: exactly one succeeds."""
    store = await make_store()
    token = await start(store)
    outcomes = await asyncio.gather(
        *(
            store.rotate(token.user_id, token.session_id, token.hash, hashed(str(n)))
            for n in range(30)
        )
    )
    assert outcomes.count(Rotation.ROTATED) == 1
    assert outcomes.count(Rotation.STALE) == 29


async def test_revoke_needs_the_current_secret_when_given(
    make_store: StoreFactory,
) -> None:
    """A wrong hash revokes nothing; the right one ends the session."""
    store = await make_store()
    token = await start(store)
    uid, sid = token.user_id, token.session_id

    assert await store.revoke(uid, sid, hashed("wrong")) is False
    assert await store.remaining(uid, sid) is not None
    assert await store.revoke(uid, sid, token.hash) is True
    assert await store.remaining(uid, sid) is None
    assert await store.list_sessions(uid) == []
    assert await store.rotate(uid, sid, token.hash, hashed("n")) is Rotation.UNKNOWN
    assert await store.revoke(uid, sid) is False


async def test_sessions_of_one_user_are_independent(make_store: StoreFactory) -> None:
    """Ending one device's session leaves the others listed."""
    store = await make_store()
    first = await start(store)
    second = await start(store, first.user_id)
    other_user = await start(store)

    await store.revoke(first.user_id, first.session_id)
    listed = [info.session_id for info in await store.list_sessions(first.user_id)]
    assert listed == [second.session_id]
    assert len(await store.list_sessions(other_user.user_id)) == 1


async def test_idle_sessions_expire(make_store: StoreFactory) -> None:
    """A session not refreshed within idle_ttl is gone."""
    store = await make_store(Lifetimes.from_seconds(idle=1, absolute=60))
    token = await start(store)
    await asyncio.sleep(2.1)
    assert await store.remaining(token.user_id, token.session_id) is None
    assert await store.list_sessions(token.user_id) == []
    outcome = await store.rotate(
        token.user_id, token.session_id, token.hash, hashed("late")
    )
    assert outcome is Rotation.UNKNOWN


async def test_refresh_extends_idle_life_up_to_the_absolute_cap(
    make_store: StoreFactory,
) -> None:
    """Each rotation pushes expiry forward, never past login + absolute_ttl."""
    store = await make_store(Lifetimes.from_seconds(idle=2, absolute=3))
    token = await start(store)
    uid, sid = token.user_id, token.session_id

    await asyncio.sleep(1.5)
    assert await store.rotate(uid, sid, token.hash, hashed("a")) is Rotation.ROTATED
    remaining = await store.remaining(uid, sid)
    # Idle would give 2 s more; the cap leaves about 1.5 s.
    assert remaining is not None and remaining <= 2

    await asyncio.sleep(1.0)
    assert await store.rotate(uid, sid, hashed("a"), hashed("b")) is Rotation.ROTATED
    await asyncio.sleep(1.2)
    assert await store.rotate(uid, sid, hashed("b"), hashed("c")) is Rotation.UNKNOWN


async def test_unreachable_store_raises_store_unavailable() -> None:
    """No server at the URL: a StoreUnavailable, never a raw client error."""
    with pytest.raises(StoreUnavailable):
        await open_store(f"redis://127.0.0.1:{free_port()}/0", 0.5, LONG)


async def test_redis_layout_holds_no_plain_secret_and_no_immortal_key(
    redis_url: str,
) -> None:
    """On Redis: the user's sorted set is scored by expiry, every key expires,
    and nothing stored contains the refresh secret."""
    store = await open_store(redis_url, 2.0, LONG)
    token = await start(store)
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        members = cast(
            list[tuple[str, float]],
            await client.zrange(sessions_key(token.user_id), 0, -1, withscores=True),
        )
        assert [member for member, _ in members] == [token.session_id]
        for key in await client.keys("*"):
            assert await client.pttl(key) > 0, key
        record = await client.hgetall(record_key(token.user_id, token.session_id))
        dumped = repr(record) + repr(members)
        assert token.secret not in dumped
        assert record["rh"] == token.hash
    finally:
        await client.aclose()
        await store.close()


async def test_dragonfly_members_carry_their_own_ttl(
    dragonfly_server_url: str | None,
) -> None:
    """On Dragonfly: a real set, and FIELDTTL on the member shows its life."""
    if dragonfly_server_url is None:
        pytest.skip("Dragonfly not available: set DRAGONFLY_URL or install dragonfly")
    store = await open_store(dragonfly_server_url, 2.0, LONG)
    assert store.kind == "dragonfly"
    token = await start(store)
    client = aioredis.Redis.from_url(dragonfly_server_url, decode_responses=True)
    try:
        key = sessions_key(token.user_id)
        assert await client.smembers(key) == {token.session_id}
        ttl = await client.execute_command(  # type: ignore[no-untyped-call]
            "FIELDTTL", key, token.session_id
        )
        assert 3595 <= int(ttl) <= 3600
    finally:
        await client.aclose()
        await store.close()

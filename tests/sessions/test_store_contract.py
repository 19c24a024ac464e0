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
    NewSession,
    Rotation,
    SessionPolicy,
    SessionStore,
    StoreUnavailable,
    open_store,
)
from gateway.sessions.base import now_ms, records_key, sessions_key
from gateway.users import uuid7
from tests.servers import free_port

StoreFactory = Callable[..., Awaitable[SessionStore]]
LONG = SessionPolicy.from_seconds(idle=3600, absolute=7200, grace=5)


@pytest.fixture(params=["store", "cluster"])
def backend_url(request: pytest.FixtureRequest, store_url: str) -> str:
    """Every backend of store_url, plus Redis Cluster (once, with memory)."""
    if request.param == "store":
        return store_url
    if store_url != "memory://":
        pytest.skip("the cluster variant runs once, alongside the memory one")
    return str(request.getfixturevalue("redis_cluster_url"))


@pytest.fixture
async def make_store(backend_url: str) -> AsyncIterator[StoreFactory]:
    opened: list[SessionStore] = []

    async def make(policy: SessionPolicy = LONG) -> SessionStore:
        store = await open_store(backend_url, 2.0, policy)
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
    """The current hash rotates; a forged one or an unknown session does not."""
    store = await make_store()
    token = await start(store)
    uid, sid = token.user_id, token.session_id

    assert await store.rotate(uid, sid, token.hash, hashed("two")) is Rotation.ROTATED
    assert await store.rotate(uid, sid, hashed("forged"), hashed("x")) is (
        Rotation.UNKNOWN
    )
    assert (
        await store.rotate(uid, sid, hashed("two"), hashed("three")) is Rotation.ROTATED
    )
    assert await store.rotate(uid, "f" * 32, token.hash, hashed("y")) is (
        Rotation.UNKNOWN
    )


async def test_replaced_token_within_grace_is_refused_but_spares_the_session(
    make_store: StoreFactory,
) -> None:
    """Inside the grace window the previous secret gets no new token, and the
    session (with its current secret) lives on."""
    store = await make_store()
    token = await start(store)
    uid, sid = token.user_id, token.session_id
    await store.rotate(uid, sid, token.hash, hashed("next"))

    outcome = await store.rotate(uid, sid, token.hash, hashed("next"))
    assert outcome is Rotation.SUPERSEDED
    assert await store.rotate(uid, sid, hashed("next"), hashed("n2")) is (
        Rotation.ROTATED
    )


async def test_replaced_token_within_grace_can_get_its_successor_again(
    make_store: StoreFactory,
) -> None:
    """With reissuing on, a retry with the previous secret is answered with
    the same successor, never a second one."""
    policy = SessionPolicy.from_seconds(3600, 7200, grace=5, reissue_in_grace=True)
    store = await make_store(policy)
    token = await start(store)
    uid, sid = token.user_id, token.session_id
    await store.rotate(uid, sid, token.hash, hashed("next"))

    assert await store.rotate(uid, sid, token.hash, hashed("next")) is (
        Rotation.RETRIED
    )
    # Asking for any other successor is not a retry of the lost answer.
    assert await store.rotate(uid, sid, token.hash, hashed("other")) is (
        Rotation.REUSED
    )


async def test_replaced_token_after_grace_revokes_the_session(
    make_store: StoreFactory,
) -> None:
    """Presenting a rotated-away secret later means it was copied: the whole
    session ends, current secret included."""
    store = await make_store(SessionPolicy.from_seconds(3600, 7200, grace=0))
    token = await start(store)
    uid, sid = token.user_id, token.session_id
    await store.rotate(uid, sid, token.hash, hashed("next"))
    await asyncio.sleep(0.01)

    assert await store.rotate(uid, sid, token.hash, hashed("next")) is (Rotation.REUSED)
    assert await store.remaining(uid, sid) is None
    assert await store.rotate(uid, sid, hashed("next"), hashed("n2")) is (
        Rotation.UNKNOWN
    )


async def test_concurrent_rotations_have_one_winner(make_store: StoreFactory) -> None:
    """Thirty racing rotations of one secret: one succeeds, the rest are
    refused inside the grace window, and the session survives."""
    store = await make_store()
    token = await start(store)
    outcomes = await asyncio.gather(
        *(
            store.rotate(token.user_id, token.session_id, token.hash, hashed("s"))
            for _ in range(30)
        )
    )
    assert outcomes.count(Rotation.ROTATED) == 1
    assert outcomes.count(Rotation.SUPERSEDED) == 29
    assert await store.remaining(token.user_id, token.session_id) is not None


async def test_cap_evicts_the_least_recently_used(make_store: StoreFactory) -> None:
    """Past max_per_user the session used longest ago goes, not the newest."""
    store = await make_store(SessionPolicy.from_seconds(3600, 7200, max_per_user=2))
    first = await start(store)
    await asyncio.sleep(0.01)
    second = await start(store, first.user_id)
    await asyncio.sleep(0.01)
    await store.rotate(first.user_id, first.session_id, first.hash, hashed("u"))
    await asyncio.sleep(0.01)

    third = await start(store, first.user_id)
    listed = {info.session_id for info in await store.list_sessions(first.user_id)}
    assert listed == {first.session_id, third.session_id}
    assert second.session_id not in listed


async def test_revoke_all_keeps_only_the_named_session(
    make_store: StoreFactory,
) -> None:
    """Ending all but one leaves exactly that one and reports the others."""
    store = await make_store()
    keep = await start(store)
    others = [await start(store, keep.user_id) for _ in range(3)]

    ended = await store.revoke_all(keep.user_id, keep=keep.session_id)
    assert sorted(ended) == sorted(token.session_id for token in others)
    listed = [info.session_id for info in await store.list_sessions(keep.user_id)]
    assert listed == [keep.session_id]
    assert await store.revoke_all(keep.user_id) == [keep.session_id]
    assert await store.list_sessions(keep.user_id) == []


async def test_revocations_reach_followers_including_late_ones(
    store_url: str,
) -> None:
    """A published revocation reaches a follower, and one that starts later
    still gets it from the backlog."""
    publisher = await open_store(store_url, 2.0, LONG)
    listener = (
        publisher
        if store_url == "memory://"
        else await open_store(store_url, 2.0, LONG)
    )
    heard: list[tuple[str, int]] = []
    until = now_ms() + 60_000
    follower = asyncio.create_task(
        listener.follow_revocations(lambda sid, t: heard.append((sid, t)))
    )
    try:
        await asyncio.sleep(0.2)
        await publisher.publish_revocations(["a" * 32, "b" * 32], until)
        for _ in range(50):
            if len(heard) >= 2:
                break
            await asyncio.sleep(0.02)
        assert heard == [("a" * 32, until), ("b" * 32, until)]
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)

    if store_url == "memory://":
        await publisher.close()
        return
    late: list[str] = []
    follower = asyncio.create_task(
        listener.follow_revocations(lambda sid, t: late.append(sid))
    )
    try:
        for _ in range(50):
            if len(late) >= 2:
                break
            await asyncio.sleep(0.02)
        assert sorted(late) == ["a" * 32, "b" * 32]
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
        await publisher.close()
        await listener.close()


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
    store = await make_store(SessionPolicy.from_seconds(idle=1, absolute=60))
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
    store = await make_store(SessionPolicy.from_seconds(idle=2, absolute=3))
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
    and nothing stored contains the refresh secret, only its hash."""
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
        records = cast(dict[str, str], await client.hgetall(records_key(token.user_id)))
        assert list(records) == [token.session_id]
        dumped = repr(records) + repr(members)
        assert token.secret not in dumped
        assert records[token.session_id].startswith(token.hash + "|")
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


async def test_throttle_allows_a_burst_then_makes_callers_wait(
    make_store: StoreFactory,
) -> None:
    """Capacity attempts pass at once, the next waits about one refill, a
    reset starts over, and buckets do not share counts."""
    store = await make_store()
    outcomes = [await store.throttle("k", capacity=3, refill_s=60) for _ in range(4)]
    assert outcomes[:3] == [0, 0, 0]
    assert 55 <= outcomes[3] <= 60
    assert await store.throttle("other", capacity=3, refill_s=60) == 0
    await store.unthrottle("k")
    assert await store.throttle("k", capacity=3, refill_s=60) == 0

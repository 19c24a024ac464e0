"""Password hashing: long, odd and equivalent passwords, and the queue bound."""

from __future__ import annotations

import asyncio

import pytest

from gateway.auth.passwords import HashingOverloaded, PasswordHasher


@pytest.fixture
async def hasher() -> PasswordHasher:
    hasher = PasswordHasher(cost=4, workers=1, queue_limit=64)
    await hasher.warm_up()
    return hasher


async def test_passwords_past_72_bytes_are_told_apart(hasher: PasswordHasher) -> None:
    """Two long passwords sharing their first 100 bytes do not match."""
    first = "a" * 100 + "first"
    stored = await hasher.hash(first)
    assert await hasher.verify(first, stored)
    assert not await hasher.verify("a" * 100 + "second", stored)
    assert await hasher.verify("é" * 1000, await hasher.hash("é" * 1000))


async def test_nul_bytes_and_unicode_forms(hasher: PasswordHasher) -> None:
    """NUL is an ordinary character; composed and decomposed é are one."""
    with_nul = "pass\x00word"
    stored = await hasher.hash(with_nul)
    assert await hasher.verify(with_nul, stored)
    assert not await hasher.verify("pass", stored)
    composed = await hasher.hash("caf\u00e9 au lait")
    assert await hasher.verify("cafe\u0301 au lait", composed)


async def test_missing_or_corrupt_hash_never_matches(hasher: PasswordHasher) -> None:
    """No stored hash (unknown user) or a broken one is a plain 'no'."""
    assert not await hasher.verify("anything", None)
    assert not await hasher.verify("anything", "not-a-bcrypt-hash")


async def test_jobs_beyond_the_queue_are_refused() -> None:
    """With every slot taken, another job fails fast instead of piling up."""
    hasher = PasswordHasher(cost=10, workers=1, queue_limit=2)
    await hasher.warm_up()
    jobs = [asyncio.ensure_future(hasher.hash("p" * 10)) for _ in range(3)]
    await asyncio.sleep(0)
    with pytest.raises(HashingOverloaded):
        await hasher.hash("one too many")
    await asyncio.gather(*jobs)
    assert hasher.pending == 0
    hasher.close()

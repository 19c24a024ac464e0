"""Password hashing with bcrypt, kept off the event loop.

bcrypt takes at most 72 bytes of input and newer releases refuse longer ones,
so each password is first normalized (NFC), digested with SHA-256 and base64
encoded: every password, of any length or content, becomes 44 ASCII bytes, and
two different passwords never share an input.  Hashing runs in a bounded
thread pool (bcrypt releases the GIL), and jobs beyond the queue limit are
refused rather than left to pile up.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import bcrypt

from gateway import metrics

T = TypeVar("T")


class HashingOverloaded(Exception):
    """Too many password jobs are waiting; the caller should retry later."""


def bcrypt_input(password: str) -> bytes:
    normalized = unicodedata.normalize("NFC", password)
    digest = hashlib.sha256(normalized.encode("utf-8", "surrogatepass")).digest()
    return base64.b64encode(digest)


def default_workers() -> int:
    """Leave one core to the event loop, but always keep one worker."""
    return max(1, (os.cpu_count() or 2) - 1)


class PasswordHasher:
    def __init__(self, cost: int, workers: int = 0, queue_limit: int = 64) -> None:
        self.cost = cost
        self.workers = workers or default_workers()
        self._pool = ThreadPoolExecutor(
            max_workers=self.workers, thread_name_prefix="bcrypt"
        )
        self._slots = self.workers + queue_limit
        self._pending = 0
        self._dummy_hash: bytes | None = None

    @property
    def pending(self) -> int:
        """Jobs running or waiting in the pool."""
        return self._pending

    async def hash(self, password: str) -> str:
        salt = bcrypt.gensalt(rounds=self.cost)
        hashed = await self._run(bcrypt.hashpw, bcrypt_input(password), salt)
        return hashed.decode("ascii")

    async def verify(self, password: str, hashed: str | None) -> bool:
        """Check *password*; with no hash, spend the same time and say no."""
        if hashed is None:
            await self._run(bcrypt.checkpw, bcrypt_input(password), self._dummy())
            return False
        try:
            stored = hashed.encode("ascii")
            return await self._run(bcrypt.checkpw, bcrypt_input(password), stored)
        except ValueError:
            # A corrupt stored hash matches nothing.
            return False

    def needs_upgrade(self, hashed: str) -> bool:
        """Whether *hashed* was made with a lower cost than the current one."""
        parts = hashed.split("$")
        # $2b$<cost>$<salt and hash>
        if len(parts) != 4 or not parts[2].isdigit():
            return False
        return int(parts[2]) < self.cost

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def warm_up(self) -> None:
        """Make the stand-in hash checked for unknown users, off the loop."""
        salt = bcrypt.gensalt(rounds=self.cost)
        self._dummy_hash = await self._run(bcrypt.hashpw, b"no such user", salt)

    def _dummy(self) -> bytes:
        if self._dummy_hash is None:
            raise RuntimeError("PasswordHasher.warm_up() was not awaited")
        return self._dummy_hash

    async def _run(self, func: Callable[..., T], *args: bytes) -> T:
        if self._pending >= self._slots:
            raise HashingOverloaded
        self._pending += 1
        metrics.HASH_JOBS.inc()
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, func, *args)
        finally:
            self._pending -= 1
            metrics.HASH_JOBS.dec()

"""Limits on password guessing: failed logins, wrong current passwords and
registrations (each of which may probe for a taken name).

Each attempt is counted in a bucket on the store before the password is
checked, so a throttled guess costs no bcrypt time; a success empties the
bucket of that name and address.  Buckets are keyed by name *and* address,
plus one per address across names, so someone failing from elsewhere can
slow down a name but never lock its owner out of their own address.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging

from aiohttp import web

from gateway.errors import Problem
from gateway.keys import CONFIG, STORE

log = logging.getLogger("gateway.auth")


class TooManyRequests(Problem):
    status = 429
    title = "Too Many Requests"

    def __init__(self, wait_s: int) -> None:
        super().__init__(
            "too many failed attempts; retry later",
            headers={"Retry-After": str(wait_s)},
        )


async def admit_password_attempt(
    request: web.Request, subject: str, address: str
) -> None:
    """Count an attempt at *subject*'s password from *address*, or 429."""
    limits = request.app[CONFIG].throttle
    if not limits.enabled:
        return
    store = request.app[STORE]
    waits = await asyncio.gather(
        store.throttle(
            _subject_key(subject, address), limits.login_attempts, limits.login_refill
        ),
        store.throttle(
            f"address:{address}", limits.address_attempts, limits.address_refill
        ),
    )
    if max(waits):
        log.info("password attempts throttled", extra={"address": address})
        raise TooManyRequests(max(waits))


async def password_accepted(request: web.Request, subject: str, address: str) -> None:
    """The right password: that subject's attempts from that address reset."""
    if request.app[CONFIG].throttle.enabled:
        await request.app[STORE].unthrottle(_subject_key(subject, address))


async def admit_registration(request: web.Request, address: str) -> None:
    """Count a registration from *address*; 429 once too many have come."""
    limits = request.app[CONFIG].throttle
    if not limits.enabled:
        return
    wait = await request.app[STORE].throttle(
        f"register:{address}", limits.address_attempts, limits.address_refill
    )
    if wait:
        raise TooManyRequests(wait)


def _subject_key(subject: str, address: str) -> str:
    # A digest keeps arbitrary user input (any Unicode, any length) out of keys.
    digest = hashlib.sha256(subject.encode("utf-8")).hexdigest()[:32]
    return f"subject:{digest}:{address}"

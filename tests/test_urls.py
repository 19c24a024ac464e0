"""Passwords are taken out of server URLs before anything prints them."""

from __future__ import annotations

import pytest

from gateway.urls import redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://localhost:6380/0", "redis://localhost:6380/0"),
        ("redis://:hunter2@127.0.0.1:6399/0", "redis://:***@127.0.0.1:6399/0"),
        (
            "postgresql://gw:hunter2@db.internal:5432/users",
            "postgresql://gw:***@db.internal:5432/users",
        ),
        (
            "postgresql://gw:hunter2@[::1]:5432/users",
            "postgresql://gw:***@[::1]:5432/users",
        ),
        (
            "postgresql://gw@db/users?password=hunter2&sslmode=require",
            "postgresql://gw@db/users?password=***&sslmode=require",
        ),
        ("postgresql://gw:hunter2@[::1/users", "***"),
        ("memory://", "memory://"),
    ],
)
def test_passwords_are_masked(url: str, shown: str) -> None:
    """In the user part or in a password= parameter; an unparsable URL is
    hidden whole, since nothing in it can be trusted to be harmless."""
    assert redact_url(url) == shown

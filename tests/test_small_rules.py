"""Small rules with big consequences, checked directly."""

from __future__ import annotations

from gateway.auth.access import revocation_deadline
from gateway.config import JwtConfig
from gateway.forwarding import TrustedProxies
from gateway.sessions import redact_url
from gateway.sessions.base import now_ms


def test_revocations_outlast_the_leeway_too() -> None:
    """An ended session stays refused for access_ttl plus the leeway."""
    deadline = revocation_deadline(JwtConfig(access_ttl=10, leeway=60))
    assert deadline - now_ms() >= 70_000


def test_store_passwords_never_show() -> None:
    """Passwords in the user part (even with '@') or the query are masked."""
    assert redact_url("redis://:hunter2@h:1/0") == "redis://:***@h:1/0"
    assert redact_url("redis://user:p@ss@host:1/0") == "redis://user:***@host:1/0"
    assert "hunter2" not in redact_url("redis://h:1/0?password=hunter2&x=1")
    assert redact_url("redis+cluster://u:pw@a:1,b:2/0") == (
        "redis+cluster://u:***@a:1,b:2/0"
    )
    assert redact_url("redis://h:1/0") == "redis://h:1/0"


def test_trusted_ranges_match_ipv4_peers_seen_through_ipv6() -> None:
    """Listening on '::', 10.1.2.3 arrives as ::ffff:10.1.2.3."""
    proxies = TrustedProxies.parse(["10.0.0.0/8"])
    assert proxies.trusts("::ffff:10.1.2.3")
    assert not proxies.trusts("::ffff:11.1.2.3")

"""Who the client really is, when the gateway sits behind other proxies.

``X-Forwarded-*`` headers are believed only when the peer that sent them is a
configured trusted proxy; otherwise anyone could claim any address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class TrustedProxies:
    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> TrustedProxies:
        return cls(tuple(ipaddress.ip_network(e, strict=False) for e in entries))

    def trusts(self, address: str | None) -> bool:
        if not address or not self.networks:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        # Listening on '::', IPv4 peers show up as ::ffff:a.b.c.d.
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.networks)

    def peer_is_trusted(self, request: web.Request) -> bool:
        return self.trusts(request.remote)

    def client_address(self, request: web.Request) -> str:
        """The nearest address in the chain that is not a trusted proxy."""
        peer = request.remote or ""
        if not self.trusts(peer):
            return peer
        chain = forwarded_for_chain(request)
        for address in reversed(chain):
            if not self.trusts(address):
                return address
        return chain[0] if chain else peer


def forwarded_for_chain(request: web.Request) -> list[str]:
    """Every address in the X-Forwarded-For headers, leftmost first."""
    return [
        part.strip()
        for value in request.headers.getall("X-Forwarded-For", ())
        for part in value.split(",")
        if _is_address(part.strip())
    ]


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True

"""Which upstream a path goes to, and whether it needs a token.

Routes are matched on the normalized path, longest prefix first; anything no
route claims goes to ``upstream.url`` and needs a token.  A public route is
only honoured for plainly written paths: one whose raw form hides a slash or
a dot behind percent-encoding, or walks with ``..``, could mean something
else to the upstream, so it needs a token like everything else.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from aiohttp import web

from gateway.config import RouteConfig, UpstreamConfig

# A public path may hold only unreserved characters, sub-delimiters other
# than ';' (path parameters, which some servers strip: /a;x/b is /a/b to
# them), ':', '@' and '/'; no percent-encoding and no '//'.
_PLAIN_PATH = re.compile(r"(?:/[A-Za-z0-9._~!$&'()*+,=:@-]*)+")


@dataclass(frozen=True)
class Route:
    prefix: str
    base_url: str
    timeout: float
    connect_timeout: float
    max_body: int
    forward_authorization: bool
    public: bool
    # The audience of X-Gateway-Assertion, or None to send none.
    assertion_audience: str | None = None

    @classmethod
    def from_config(cls, route: RouteConfig) -> Route:
        return cls(
            prefix=route.prefix,
            base_url=route.upstream.rstrip("/"),
            timeout=route.timeout,
            connect_timeout=route.connect_timeout,
            max_body=route.max_body,
            forward_authorization=route.forward_authorization,
            public=route.public,
            assertion_audience=_audience(
                route.assertion, route.assertion_audience, route.upstream
            ),
        )

    @classmethod
    def default(cls, upstream: UpstreamConfig) -> Route:
        return cls(
            prefix="/",
            base_url=upstream.url.rstrip("/"),
            timeout=upstream.timeout,
            connect_timeout=upstream.connect_timeout,
            max_body=upstream.max_body,
            forward_authorization=upstream.forward_authorization,
            public=False,
            assertion_audience=_audience(
                upstream.assertion, upstream.assertion_audience, upstream.url
            ),
        )

    def covers(self, path: str) -> bool:
        if self.prefix.endswith("/"):
            return path.startswith(self.prefix)
        return path == self.prefix or path.startswith(self.prefix + "/")


class Router:
    def __init__(self, routes: Sequence[Route], default: Route) -> None:
        self._routes = sorted(routes, key=lambda route: len(route.prefix), reverse=True)
        self._default = default

    def match(self, request: web.Request) -> Route:
        path = request.path
        for route in self._routes:
            if route.covers(path):
                if route.public and not self._safely_public(route, request):
                    return replace(route, public=False)
                return route
        return self._default

    def _safely_public(self, public: Route, request: web.Request) -> bool:
        """Whether no reading of the path could reach a protected route: it
        is written plainly, and no protected route under the public one
        matches it when case is ignored (case-blind upstreams exist)."""
        if not _plainly_written(request.raw_path):
            return False
        folded = request.path.casefold()
        return not any(
            not route.public
            and len(route.prefix) > len(public.prefix)
            and replace(route, prefix=route.prefix.casefold()).covers(folded)
            for route in self._routes
        )


def _audience(enabled: bool, audience: str, upstream_url: str) -> str | None:
    if not enabled:
        return None
    return audience or upstream_url.rstrip("/")


def _plainly_written(raw_path: str) -> bool:
    # Dot segments never get here: the proxy refuses them before routing.
    path = raw_path.split("?", 1)[0]
    return bool(_PLAIN_PATH.fullmatch(path)) and "//" not in path


class OwnPaths:
    """The gateway's own endpoints, to answer 405 for any other method on
    them instead of proxying (path templates such as
    ``/user/sessions/{session_id}`` included)."""

    def __init__(self, router: web.UrlDispatcher) -> None:
        methods: dict[web.AbstractResource, set[str]] = {}
        for route in router.routes():
            if route.resource is not None:
                methods.setdefault(route.resource, set()).add(route.method)
        self._entries = [
            (resource.canonical, _matcher(resource), frozenset(found))
            for resource, found in methods.items()
        ]

    def methods_for(self, path: str) -> frozenset[str] | None:
        for _, matches, methods in self._entries:
            if matches(path):
                return methods
        return None

    def items(self) -> list[tuple[str, frozenset[str]]]:
        """Each endpoint's path pattern and its methods."""
        return [(canonical, methods) for canonical, _, methods in self._entries]


def _matcher(resource: web.AbstractResource) -> Callable[[str], bool]:
    info = resource.get_info()
    pattern = info.get("pattern")
    if isinstance(pattern, re.Pattern):
        return lambda path: pattern.fullmatch(path) is not None
    exact = info.get("path", resource.canonical)
    return lambda path: path == exact

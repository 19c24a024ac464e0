"""The demo upstream: trusts ``X-User-Id`` because only the gateway reaches it.

``GET /resource`` is the seed's restricted data; ``/echo`` shows exactly what
arrived (method, path, query, headers, body size), which is handy for seeing
what the gateway forwards.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from aiohttp import web


async def resource(request: web.Request) -> web.Response:
    user_id = request.headers.get("X-User-Id")
    if user_id is None:
        return web.json_response({"error": "no X-User-Id header"}, status=400)
    return web.json_response(
        {"user_id": user_id, "message": "restricted data for this user"}
    )


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response(
        {
            "method": request.method,
            "path": request.raw_path.split("?", 1)[0],
            "query": request.query_string,
            "headers": [[name, value] for name, value in request.headers.items()],
            "body_bytes": len(body),
        }
    )


def create_app() -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/resource", resource)
    app.router.add_route("*", "/echo", echo)
    app.router.add_route("*", "/echo/{tail:.*}", echo)
    return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="upstream-demo", description="Demo upstream for the gateway."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args(argv)
    print(f"upstream-demo listening on http://{args.host}:{args.port}", flush=True)
    web.run_app(create_app(), host=args.host, port=args.port, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A WebSocket echo server built on the ``websockets`` library, run as its own
process by the tests: a real third-party WebSocket implementation upstream.

It echoes text and binary frames, answers "whoami" with the X-User-Id of the
handshake, closes with code 4002 when sent "close-4002", and prints the close
code it receives from its peer.
"""

from __future__ import annotations

import asyncio
import sys

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed


async def echo(connection: ServerConnection) -> None:
    try:
        async for message in connection:
            await answer(connection, message)
    except ConnectionClosed:
        pass
    finally:
        received = connection.protocol.close_rcvd
        print(f"closed {received.code if received else None}", flush=True)


async def answer(connection: ServerConnection, message: str | bytes) -> None:
    if message == "whoami":
        request = connection.request
        user = request.headers.get("X-User-Id", "") if request else ""
        await connection.send(f"user:{user}")
    elif message == "close-4002":
        await connection.close(4002, "upstream says bye")
    else:
        await connection.send(message)


async def main(port: int) -> None:
    async with serve(echo, "127.0.0.1", port) as server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))

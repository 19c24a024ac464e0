"""A TCP relay that can go silent, like a NAT that forgets a connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tests.servers import HOST, free_port


class Relay:
    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self._target = target_port
        self._silenced: list[asyncio.Event] = []

    def silence_existing(self) -> None:
        """Stop passing data on every connection open now, without closing
        them; connections made later work normally."""
        for flag in self._silenced:
            flag.set()

    async def _serve(
        self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        upstream_r, upstream_w = await asyncio.open_connection(HOST, self._target)
        silenced = asyncio.Event()
        self._silenced.append(silenced)
        await asyncio.gather(
            _pipe(client_r, upstream_w, silenced),
            _pipe(upstream_r, client_w, silenced),
            return_exceptions=True,
        )
        for writer in (client_w, upstream_w):
            writer.close()


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, silenced: asyncio.Event
) -> None:
    while data := await reader.read(65536):
        if not silenced.is_set():
            writer.write(data)
            await writer.drain()


@asynccontextmanager
async def relay_to(port: int) -> AsyncIterator[Relay]:
    relay = Relay(port)
    server = await asyncio.start_server(relay._serve, HOST, relay.port)
    try:
        yield relay
    finally:
        server.close()

"""A TCP proxy that stands between a store and its real server and misbehaves on demand.

``FaultProxy`` listens on a free loopback port and forwards every connection to the
target. Its mode applies at once to every connection, open or new:

- ``pass``: forward bytes as they come;
- ``delay``: forward each chunk ``delay`` seconds late (in order);
- ``hold``: forward nothing; what arrives waits, and goes on if the mode changes back;
- ``reset``: the next chunk, or a new connection, closes both sides abruptly (RST).

It runs in the test's event loop, so the app, the store and the proxy share one loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import Literal

Mode = Literal["pass", "delay", "hold", "reset"]
HOST = "127.0.0.1"
CHUNK = 65536


def abort(writer: asyncio.StreamWriter) -> None:
    """Close a connection at once with a TCP RST (SO_LINGER 0), as a crashed peer would."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Link:
    """One proxied connection: the client's side and the server's side."""

    def __init__(self, client: asyncio.StreamWriter, server: asyncio.StreamWriter) -> None:
        self.client, self.server = client, server
        self.client_turn = False
        """True while the client is sending: the server has not answered since."""

    def reset(self) -> None:
        abort(self.client)
        abort(self.server)


class FaultProxy:
    """Forward loopback TCP connections to ``target``, with faults chosen by ``set()``."""

    def __init__(self, target_host: str, target_port: int, *, port: int = 0) -> None:
        """Forward to ``target_host:target_port``; listen on ``port``, or any free port if 0."""
        self.target = (target_host, target_port)
        self.mode: Mode = "pass"
        self.delay = 0.0
        self.port = port
        self.connections = 0
        """Connections accepted so far."""
        self.resets = 0
        """Connections closed with a RST by the ``reset`` mode."""
        self.round_trips = 0
        """Client turns so far: each time a client sends after its server has spoken
        (or first), however many chunks the request takes."""
        self.held = asyncio.Event()
        """Set once a chunk is held back; cleared by every ``set()``."""
        self._changed = asyncio.Event()
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, HOST, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def set(self, mode: Mode, *, delay: float = 0.0) -> None:
        """Switch every connection, open or new, to ``mode`` (``delay`` in seconds)."""
        self.mode, self.delay = mode, delay
        self.held.clear()
        self._changed.set()
        self._changed = asyncio.Event()

    def reset_all(self) -> None:
        """Close every open connection now with a RST, whatever the mode."""
        for link in list(self._links):
            link.reset()
            self.resets += 1

    async def close(self) -> None:
        """Stop listening and reset every connection; held ones are let go and reset."""
        if self._server is not None:
            self._server.close()
        self.set("reset")
        self.reset_all()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            await self._serve(reader, writer)
        finally:
            self._tasks.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while self.mode == "hold":  # a new connection waits too, as in a partition
            self.held.set()
            await self._changed.wait()
        if self.mode == "reset":
            self.resets += 1
            abort(writer)
            return
        try:
            upstream_reader, upstream = await asyncio.open_connection(*self.target)
        except OSError:
            abort(writer)
            return
        link = _Link(writer, upstream)
        self._links.add(link)
        try:
            pumps = (self._pump(reader, upstream, link), self._pump(upstream_reader, writer, link))
            await asyncio.gather(*pumps)
        finally:
            self._links.discard(link)
            for side in (writer, upstream):
                side.close()

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link
    ) -> None:
        """Copy one direction, applying the mode to each chunk; end both sides on EOF."""
        try:
            while chunk := await reader.read(CHUNK):
                while self.mode == "hold":
                    self.held.set()
                    await self._changed.wait()
                if self.mode == "reset":
                    self.resets += 1
                    link.reset()
                    return
                if self.mode == "delay":
                    await asyncio.sleep(self.delay)
                from_client = writer is link.server
                if from_client and not link.client_turn:
                    self.round_trips += 1
                link.client_turn = from_client
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            link.reset()
            return
        link.client.close()
        link.server.close()

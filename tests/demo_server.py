"""The demo as a real server process, for tests that restart it or drive it with a browser."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def demo_process(store: Path | str, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """``asgi-sessions demo`` in its own process, on an SQLite file or any store URL;
    always stopped on the way out."""
    url = f"sqlite:///{store}" if isinstance(store, Path) else store
    argv = ["demo", "--port", str(port), "--store", url]
    process = subprocess.Popen(
        [sys.executable, "-m", "asgi_sessions.cli", *argv],
        cwd=store.parent if isinstance(store, Path) else None,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


async def wait_until_serving(client: httpx.AsyncClient, process: subprocess.Popen[bytes]) -> None:
    """Poll a path that touches no session until the server answers."""
    with anyio.fail_after(30):
        while True:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            try:
                await client.get("/not-a-page")
            except httpx.TransportError:
                await anyio.sleep(0.1)
            else:
                return

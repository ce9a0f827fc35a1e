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
def demo_process(db: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """``asgi-sessions demo`` in its own process; always stopped on the way out."""
    argv = ["demo", "--port", str(port), "--store", f"sqlite:///{db}"]
    process = subprocess.Popen(
        [sys.executable, "-m", "asgi_sessions.cli", *argv],
        cwd=db.parent,
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

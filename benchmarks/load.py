"""Load drivers: a hand-written ASGI caller (primary), httpx's ASGITransport
(secondary), and uvicorn driven over loopback by wrk (end to end).

Each virtual client keeps its cookie as a browser does: a ``Set-Cookie`` for the
session replaces it, a deleting one drops it.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.types import ASGIApp, Message

COOKIE = b"session"
_DISCONNECT: Message = {"type": "http.disconnect"}


class Client:
    """One browser: its session cookie, sent on every request, updated from responses."""

    def __init__(self, cookie: bytes | None = None) -> None:
        self.cookie = cookie
        self.errors = 0

    def _headers(self) -> list[tuple[bytes, bytes]]:
        headers = [(b"host", b"bench")]
        if self.cookie is not None:
            headers.append((b"cookie", COOKIE + b"=" + self.cookie))
        return headers

    def _take(self, value: bytes) -> None:
        """Apply a session ``Set-Cookie`` value, as a browser would."""
        token = value.split(b";", 1)[0][len(COOKIE) + 1 :]
        deleting = b"max-age=0" in value.lower() or b"expires=thu, 01 jan 1970" in value.lower()
        self.cookie = None if deleting else token

    async def call(self, app: ASGIApp, path: str) -> int:
        """Send one GET straight into the ASGI app; return the status code."""
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": self._headers(),
            "client": ("127.0.0.1", 50000),
            "server": ("bench", 80),
            "state": {},
        }
        status = 0
        received = False

        async def receive() -> Message:
            nonlocal received
            if received:
                return _DISCONNECT
            received = True
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", ()):
                    if name == b"set-cookie" and value.startswith(COOKIE + b"="):
                        self._take(value)

        await app(scope, receive, send)
        if status >= 400:
            self.errors += 1
        return status


async def direct_rate(app: ASGIApp, path: str, clients: Sequence[Client], seconds: float) -> float:
    """Requests per second with one task per client, each calling ``app`` in a loop."""
    count = 0
    deadline = time.perf_counter() + seconds

    async def worker(client: Client) -> None:
        nonlocal count
        call, clock = client.call, time.perf_counter
        while clock() < deadline:
            await call(app, path)
            count += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker(client) for client in clients))
    return count / (time.perf_counter() - start)


async def direct_latencies(app: ASGIApp, path: str, clients: Sequence[Client]) -> list[float]:
    """Seconds taken by one request per client, in turn (no concurrency)."""
    out = []
    for client in clients:
        start = time.perf_counter()
        await client.call(app, path)
        out.append(time.perf_counter() - start)
    return out


def httpx_clients(app: ASGIApp, cookies: Sequence[bytes | None]) -> list[httpx.AsyncClient]:
    """httpx clients over one ASGITransport, each holding one cookie in its jar."""
    transport = httpx.ASGITransport(app)
    clients = []
    for cookie in cookies:
        client = httpx.AsyncClient(transport=transport, base_url="http://bench")
        if cookie is not None:
            client.cookies.set(COOKIE.decode(), cookie.decode(), domain="bench.local")
        clients.append(client)
    return clients


async def httpx_rate(
    clients: Sequence[httpx.AsyncClient], path: str, seconds: float
) -> tuple[float, int]:
    """Requests per second through httpx clients; also the count of error statuses."""
    count = errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal count, errors
        while time.perf_counter() < deadline:
            response = await client.get(path)
            errors += response.status_code >= 400
            count += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker(client) for client in clients))
    return count / (time.perf_counter() - start), errors


# -- end to end: uvicorn in a subprocess, wrk over loopback --------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """A uvicorn subprocess serving one variant on 127.0.0.1."""

    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


STACKS = {"asyncio+h11": ["--loop", "asyncio", "--http", "h11"],
          "uvloop+httptools": ["--loop", "uvloop", "--http", "httptools"]}  # fmt: skip
"""uvicorn without its standard extras, and with them (``uvicorn[standard]``)."""


def start_server(
    variant: str, environment: dict[str, str], stack: str = "asyncio+h11"
) -> Server:
    """Start uvicorn (one worker, warnings only, no access log) on ``stack`` and wait
    until it answers."""
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "benchmarks.serve:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--log-level", "warning", "--no-access-log", *STACKS[stack],
    ]  # fmt: skip
    env = {**os.environ, **environment, "BENCH_VARIANT": variant}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    process = subprocess.Popen(command, cwd=root, env=env)
    server = Server(process, port)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"uvicorn for {variant} exited with {process.returncode}")
        try:
            httpx.get(f"{server.url}/untouched", timeout=1)
            return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"uvicorn for {variant} did not answer within 20s")


def session_cookie(server: Server) -> str | None:
    """Hit ``/write`` once, as a browser's first visit, and return the session cookie."""
    response = httpx.get(f"{server.url}/write", timeout=10)
    return response.cookies.get(COOKIE.decode())


_WRK_RATE = re.compile(r"Requests/sec:\s+([\d.]+)")
_WRK_ERRORS = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_WRK_PERCENTILE = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url: str, cookie: str | None, seconds: float, connections: int = 50) -> dict[str, float]:
    """Run wrk (one thread) against ``url``; requests/s, errors and p50/p99 in ms."""
    duration = f"-d{max(1, round(seconds))}s"  # wrk takes whole seconds
    command = ["wrk", "-t1", f"-c{connections}", duration, "--latency", url]
    if cookie is not None:
        command[1:1] = ["-H", f"Cookie: {COOKIE.decode()}={cookie}"]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rate = _WRK_RATE.search(output)
    if rate is None:
        raise RuntimeError(f"could not read wrk's output:\n{output}")
    result = {"rps": float(rate.group(1)), "errors": 0.0}
    if errors := _WRK_ERRORS.search(output):
        result["errors"] = float(errors.group(1))
    for percentile, value, unit in _WRK_PERCENTILE.findall(output):
        result[f"p{percentile}_ms"] = float(value) * _UNITS[unit]
    return result


async def httpx_loop(
    url: str, cookie: str | None, seconds: float, connections: int = 50
) -> dict[str, float]:
    """wrk's stand-in when it is not installed: httpx over loopback, ``connections`` tasks."""
    limits = httpx.Limits(max_connections=connections)
    cookies = {COOKIE.decode(): cookie} if cookie else None
    async with httpx.AsyncClient(limits=limits, cookies=cookies) as client:
        count = errors = 0
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal count, errors
            while time.perf_counter() < deadline:
                response = await client.get(url)
                errors += response.status_code >= 400
                count += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        return {"rps": count / (time.perf_counter() - start), "errors": float(errors)}


def have_wrk() -> bool:
    return shutil.which("wrk") is not None

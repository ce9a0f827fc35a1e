"""Background cleanup: during the app's lifespan, in a custom lifespan, and its errors."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import anyio
import asyncpg
import httpx
import pytest
from demo_server import free_port
from starlette.applications import Starlette
from starlette.testclient import TestClient
from starlette.types import Message

from asgi_sessions import SessionMiddleware, create_store
from asgi_sessions.cleanup import cleanup_task
from asgi_sessions.stores import MemoryStore
from asgi_sessions.stores.base import (
    DEFAULT_PAUSE_RATIO,
    ProgressCallback,
    SessionRecord,
    utc_now,
)
from asgi_sessions.testing import FrozenClock, RecordingStore

pytest_plugins = ["faults.stores"]  # store_url: each kind of store, its own namespace

INTERVAL = 0.01


async def add_expired(store: MemoryStore | RecordingStore, clock: FrozenClock, n: int) -> None:
    """Add ``n`` records that expired long enough ago for cleanup to remove them."""
    for i in range(n):
        past = clock() - store.cleanup_grace - timedelta(seconds=1)
        await store.create(SessionRecord(f"{i:064x}", b"{}", None, past, past))


async def eventually(condition: Callable[[], Awaitable[bool]], seconds: float = 5.0) -> None:
    """Poll ``condition()`` until it is true: the sweep runs on its own schedule."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "cleanup did not run in time"
        await asyncio.sleep(INTERVAL)


def test_middleware_sweeps_during_the_lifespan_of_a_test_client(clock: FrozenClock) -> None:
    store = RecordingStore(MemoryStore(clock=clock))
    asyncio.run(add_expired(store, clock, 3))
    store.reset()
    app = Starlette()
    app.add_middleware(SessionMiddleware, store=store, cleanup_interval=INTERVAL)
    with TestClient(app) as client:

        async def swept() -> bool:
            return "cleanup_expired_sessions" in store.calls

        assert client.portal is not None
        client.portal.call(eventually, swept)
    assert asyncio.run(store.store.clear()) == 0  # the sweep removed all three


def test_no_cleanup_task_without_an_interval(clock: FrozenClock) -> None:
    store = RecordingStore(MemoryStore(clock=clock))
    app = Starlette()
    app.add_middleware(SessionMiddleware, store=store)
    with TestClient(app):
        pass
    assert store.calls == []


@pytest.mark.anyio
async def test_cleanup_task_in_a_custom_lifespan(clock: FrozenClock) -> None:
    store = MemoryStore(clock=clock)
    recording = RecordingStore(store)
    await add_expired(store, clock, 5)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with cleanup_task(recording, interval=INTERVAL):
            yield

    async with lifespan(Starlette()):

        async def swept() -> bool:
            return "cleanup_expired_sessions" in recording.calls

        await eventually(swept)
    assert await store.clear() == 0
    assert all(not t.get_coro().__qualname__.startswith("run_cleanup")  # type: ignore[union-attr]
               for t in asyncio.all_tasks())


@pytest.mark.anyio
async def test_failed_sweep_is_logged_and_retried(
    clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    store = RecordingStore(MemoryStore(clock=clock))
    store.fail("cleanup_expired_sessions")
    await add_expired(store.store, clock, 2)  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, logger="asgi_sessions.cleanup"):
        async with cleanup_task(store, interval=INTERVAL):

            async def failed_twice() -> bool:
                return store.calls.count("cleanup_expired_sessions") >= 2

            await eventually(failed_twice)
            store.heal()
            store.reset()

            async def swept() -> bool:
                return "cleanup_expired_sessions" in store.calls

            await eventually(swept)
    assert await store.store.clear() == 0
    assert "expired-session cleanup failed; retrying" in caplog.text


@pytest.mark.anyio
async def test_two_uvicorn_workers_sweep_and_shut_down_cleanly(
    postgres_dsn: str, namespace: str
) -> None:
    url = f"{postgres_dsn}?table_name={namespace}"
    async with create_store(url) as store:
        for i in range(50):
            past = utc_now() - store.cleanup_grace - timedelta(seconds=1)
            await store.create(SessionRecord(f"{i:064x}", b"{}", None, past, past))
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "--factory", "cleanup_app:create_app",
               "--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
    environment = {**os.environ, "SESSION_STORE": url, "CLEANUP_INTERVAL": "0.2"}
    server = subprocess.Popen(command, cwd=Path(__file__).parent, env=environment,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    connection = await asyncpg.connect(postgres_dsn)
    try:
        with anyio.fail_after(30):
            while await connection.fetchval(f'SELECT count(*) FROM "{namespace}"') != 0:
                await anyio.sleep(0.1)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                assert (await client.get("/ping")).status_code == 200
    finally:
        server.send_signal(signal.SIGINT)
        output = server.communicate(timeout=30)[0].decode()
        await connection.execute(f'DROP TABLE IF EXISTS "{namespace}"')
        await connection.close()
    assert server.returncode == 0, output
    assert output.count("Application shutdown complete") == 2, output
    assert "Traceback" not in output and "ERROR" not in output, output


class SweepTally(RecordingStore):
    """A real store that also adds up what its sweeps removed."""

    removed = 0

    async def cleanup_expired_sessions(
        self,
        *,
        batch_size: int = 1000,
        progress: ProgressCallback | None = None,
        pause_ratio: float = DEFAULT_PAUSE_RATIO,
    ) -> int:
        removed = await super().cleanup_expired_sessions(
            batch_size=batch_size, progress=progress, pause_ratio=pause_ratio
        )
        self.removed += removed
        return removed


@asynccontextmanager
async def running_lifespan(app: Starlette) -> AsyncIterator[None]:
    """Drive an app's lifespan as a server does: startup, then shutdown on exit."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    server = asyncio.create_task(app(scope, inbox.get, outbox.put))
    assert (await outbox.get())["type"] == "lifespan.startup.complete"
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        assert (await outbox.get())["type"] == "lifespan.shutdown.complete"
        await server


@pytest.mark.anyio
async def test_lifespan_cleanup_sweeps_every_store_and_stops(
    store_url: str, clock: FrozenClock
) -> None:
    store = SweepTally(create_store(store_url, clock=clock))
    for i in range(5):
        an_hour = clock() + timedelta(hours=1)
        await store.create(SessionRecord(f"{i:064x}", b"{}", "ann", clock(), an_hour))
    clock.advance(hours=2)  # expired by the store's clock, still held by every store
    app = Starlette()
    app.add_middleware(SessionMiddleware, store=store, cleanup_interval=INTERVAL)
    async with running_lifespan(app):

        async def swept() -> bool:
            return store.removed == 5

        await eventually(swept)
    sweeps = store.calls.count("cleanup_expired_sessions")
    await asyncio.sleep(INTERVAL * 5)
    assert store.calls.count("cleanup_expired_sessions") == sweeps  # stopped at shutdown
    await store.close()

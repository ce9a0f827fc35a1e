"""Sweeping expired sessions in the background, for the app's lifetime.

``SessionMiddleware(cleanup_interval=...)`` uses this on lifespan startup and
shutdown; apps with their own lifespan use ``cleanup_task()`` or
``run_cleanup()`` directly.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from asgi_sessions.stores.base import SessionStore

logger = logging.getLogger("asgi_sessions.cleanup")


async def run_cleanup(store: SessionStore, interval: float, *, jitter: float = 0.1) -> None:
    """Sweep ``store`` every ``interval`` seconds (±``jitter`` of it) until cancelled.

    The jitter keeps many workers from sweeping in step. A failed sweep is logged
    and tried again at the next interval; it never ends the loop. Cancelling ends it
    even if a store's driver dropped the cancellation, so shutdown cannot hang.
    """
    task = asyncio.current_task()
    requested = task.cancelling() if task is not None else 0
    while True:
        await asyncio.sleep(interval * random.uniform(1 - jitter, 1 + jitter))
        try:
            removed = await store.cleanup_expired_sessions()
        except Exception:
            logger.exception("expired-session cleanup failed; retrying in %.0fs", interval)
        else:
            logger.debug("removed %d expired sessions", removed)
        if task is not None and task.cancelling() > requested:
            raise asyncio.CancelledError


@asynccontextmanager
async def cleanup_task(
    store: SessionStore, interval: float = 900, *, jitter: float = 0.1
) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``run_cleanup()`` for the duration of the ``async with`` block."""
    task = asyncio.create_task(run_cleanup(store, interval, jitter=jitter))
    try:
        yield task
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


async def run_during_lifespan(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, store: SessionStore, interval: float
) -> None:
    """Pass a lifespan scope to ``app``, sweeping from startup until shutdown."""
    task: asyncio.Task[None] | None = None

    async def stop() -> None:
        nonlocal task
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
            task = None

    async def receive_wrapper() -> Message:
        message = await receive()
        if message["type"] == "lifespan.shutdown":
            await stop()
        return message

    async def send_wrapper(message: Message) -> None:
        nonlocal task
        if message["type"] == "lifespan.startup.complete" and task is None:
            task = asyncio.create_task(run_cleanup(store, interval))
        await send(message)

    try:
        await app(scope, receive_wrapper, send_wrapper)
    finally:
        await stop()

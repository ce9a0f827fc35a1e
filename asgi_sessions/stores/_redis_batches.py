"""Commands that concurrent calls issue in the same turn of the event loop, sent to
Redis in one pipeline.

redis-py sends each command on its own: a connection from the pool, a write, a wake-up
for the reply, and its bookkeeping around each. Under concurrent requests that, not
Redis, takes most of a call's time. Here the first command of a turn waits for the rest
of the turn (one ``sleep(0)``); if others joined, all go in one pipeline (no MULTI:
each command stands alone, as it would have) and each caller gets its own reply or
error. A lone command is sent as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis

__all__ = ["CommandBatches"]

_Command = tuple[tuple[Any, ...], dict[str, Any], "asyncio.Future[Any]"]


class CommandBatches:
    """Batches for one client (and so one event loop)."""

    def __init__(self, client: Redis, send: Callable[..., Awaitable[Any]]) -> None:
        self._client = client
        self._send = send
        """How a lone command is sent: the client's own ``execute_command``."""
        self._forming: list[_Command] | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self.pipelines = 0
        """How many batches of two or more commands have been sent."""

    async def run(self, *args: Any, **options: Any) -> Any:
        """Send one command, with the others of this turn if there are any."""
        forming = self._forming
        if forming is not None:  # a batch is forming: join it
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            forming.append((args, options, future))
            return await future
        forming = self._forming = []
        try:
            await asyncio.sleep(0)  # the other tasks of this turn run, and join
        except BaseException:
            self._forming = None
            if forming:
                self._start(forming)  # they joined: send them, without this one
            raise
        self._forming = None
        if not forming:
            return await self._send(*args, **options)
        future = asyncio.get_running_loop().create_future()
        self._start([(args, options, future), *forming])
        return await future

    def _start(self, batch: list[_Command]) -> None:
        """Send ``batch`` in a task of its own, so no caller's cancellation cuts it."""
        task = asyncio.ensure_future(self._pipeline(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _pipeline(self, batch: list[_Command]) -> None:
        self.pipelines += 1
        pipe = self._client.pipeline(transaction=False)
        for args, options, _ in batch:
            pipe.execute_command(*args, **options)
        try:
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        except BaseException as exc:  # the connection failed: every command with it
            replies = [exc] * len(batch)
        for (_, _, future), reply in zip(batch, replies, strict=True):
            if future.done():  # its caller gave up
                continue
            if isinstance(reply, asyncio.CancelledError):
                future.cancel()
            elif isinstance(reply, BaseException):
                future.set_exception(reply)
            else:
                future.set_result(reply)

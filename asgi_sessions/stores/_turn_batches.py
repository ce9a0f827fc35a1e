"""Calls that concurrent tasks make in the same turn of the event loop, served together.

A driver sends each call on its own: a connection from the pool, a write, a wake-up for
the reply, and its bookkeeping around each. Under concurrent requests that, not the
server, takes most of a call's time. Here the first call of a turn waits for the rest
of the turn (one ``sleep(0)``); if others joined, all are served by one batch (a Redis
pipeline) in a task of its own, and each caller gets its own result or error. A call
made while no other is under way is served at once, as before: nobody else can be
coming in its turn, so waiting for one would only cost it time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["TurnBatches", "answer"]

Item = TypeVar("Item")
Result = TypeVar("Result")


class TurnBatches(Generic[Item, Result]):
    """Batches of one kind of call, for one event loop.

    ``one(item)`` serves a lone call. ``many(items)`` serves a batch and returns a result
    or an exception for each item, in order; if it raises, every caller in the batch
    gets that error.
    """

    def __init__(
        self,
        one: Callable[[Item], Awaitable[Result]],
        many: Callable[[list[Item]], Awaitable[Sequence[Result | BaseException]]],
    ) -> None:
        self._one = one
        self._many = many
        self._forming: list[tuple[Item, asyncio.Future[Result]]] | None = None
        self._serving: set[asyncio.Task[None]] = set()
        self._under_way = 0
        """Calls and batches being served: while there are none, a call goes alone."""
        self.batches = 0
        """How many batches of two or more calls have been served."""

    async def run(self, item: Item) -> Result:
        """Serve one call, with the others of this turn if there are any."""
        forming = self._forming
        if forming is not None:  # a batch is forming: join it
            future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
            forming.append((item, future))
            return await future
        if not self._under_way:
            return await self._alone(item)
        forming = self._forming = []
        try:
            await asyncio.sleep(0)  # the other tasks of this turn run, and join
        except BaseException:
            self._forming = None
            if forming:
                self._start(forming)  # they joined: serve them, without this one
            raise
        self._forming = None
        if not forming:
            return await self._alone(item)
        future = asyncio.get_running_loop().create_future()
        self._start([(item, future), *forming])
        return await future

    async def _alone(self, item: Item) -> Result:
        self._under_way += 1
        try:
            return await self._one(item)
        finally:
            self._under_way -= 1

    def _start(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        """Serve ``batch`` in a task of its own, so no caller's cancellation cuts it."""
        task = asyncio.ensure_future(self._serve(batch))
        self._serving.add(task)
        task.add_done_callback(self._serving.discard)

    async def _serve(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        self.batches += 1
        self._under_way += 1
        outcomes: Sequence[Result | BaseException]
        try:
            outcomes = await self._many([item for item, _ in batch])
        except BaseException as exc:  # the batch failed as a whole: every call with it
            outcomes = [exc] * len(batch)
        finally:
            self._under_way -= 1
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            answer(future, outcome)


def answer(future: asyncio.Future[Result], outcome: Result | BaseException) -> None:
    """Give a batched caller its result or error, unless it gave up waiting."""
    if future.done():
        return
    if isinstance(outcome, asyncio.CancelledError):
        future.cancel()
    elif isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)

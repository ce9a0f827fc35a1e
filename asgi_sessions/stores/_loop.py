"""A connection, pool or client per event loop, opened by one attempt at a time.

A pool belongs to the event loop that opened it. Starlette's TestClient may run
each request in a new loop, and a store may be used from several loops at once
(threads, test runners), so each loop gets its own resource. A resource is
closed by ``close()`` in its loop, or while its loop shuts down (``asyncio.run``
finalizes async generators then); one left behind by a loop closed some other way
is discarded on the next use. Nothing is ever closed from a foreign thread.

Opening may fail slowly: a silent server costs a whole connect timeout. So callers
that arrive while a resource is being opened wait for that one attempt and share its
outcome, instead of each making an attempt of its own in turn; and a failed attempt
is remembered for ``retry_after`` seconds, during which callers get its error at once
instead of piling up behind new attempts. The first caller after that tries again, so
a store recovers by itself once its server is back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from typing import Generic, TypeVar

T = TypeVar("T")
Loop = asyncio.AbstractEventLoop

RETRY_AFTER = 1.0
"""Seconds a failed attempt to open is remembered before the next one is made."""


class SharedAttempt(Generic[T]):
    """One attempt at a time at something slow that may fail, such as connecting.

    Callers that arrive while an attempt runs wait for it and share its outcome; it runs
    as a task of its own, shielded, so a caller that is cancelled stops waiting without
    cutting the attempt short for the others. A failed attempt stands for
    ``retry_after`` seconds: callers meanwhile get its error at once. After that, or
    after a success, the next caller starts a new attempt.
    """

    def __init__(self, attempt: Callable[[], Awaitable[T]], *, retry_after: float) -> None:
        self._attempt = attempt
        self._retry_after = retry_after
        self._task: asyncio.Task[T] | None = None
        self._retry_at = 0.0
        """Loop time before which a failed attempt stands and is not made again."""

    async def __call__(self) -> T:
        loop = asyncio.get_running_loop()
        task = self._task
        if task is None or (task.done() and not self._standing(task, loop)):
            task = self._task = loop.create_task(self._run(loop))
            task.add_done_callback(_retrieve)
        return await asyncio.shield(task)

    async def cancel(self) -> None:
        """Cancel an attempt in progress and wait until it has ended."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.wait([self._task])

    def _standing(self, task: asyncio.Task[T], loop: Loop) -> bool:
        """Whether a finished attempt failed recently enough that its error still stands."""
        failed = not task.cancelled() and task.exception() is not None
        return failed and loop.time() < self._retry_at

    async def _run(self, loop: Loop) -> T:
        try:
            return await self._attempt()
        except Exception:
            self._retry_at = loop.time() + self._retry_after
            raise


def _retrieve(attempt: asyncio.Task[T]) -> None:
    """Mark an attempt's error as seen, even if every caller stopped waiting for it."""
    if not attempt.cancelled():
        attempt.exception()


@dataclass
class _Slot(Generic[T]):
    """One loop's resource, the attempt that opens it, and what closes it at shutdown."""

    resource: T | None = None
    guard: AsyncGenerator[None, None] | None = None
    opening: SharedAttempt[T] | None = None


class LoopLocal(Generic[T]):
    """Open a resource on first use in each event loop; reuse it within that loop."""

    def __init__(
        self,
        open: Callable[[], Awaitable[T]],
        close: Callable[[T], Awaitable[None]],
        discard: Callable[[T], None] = lambda resource: None,
        *,
        retry_after: float = RETRY_AFTER,
    ) -> None:
        self._open = open
        self._close = close
        self._discard = discard
        self._retry_after = retry_after
        self._slots: dict[Loop, _Slot[T]] = {}

    async def get(self) -> T:
        """Return this loop's resource, opening it if needed, by one ``SharedAttempt``:
        concurrent callers share it, and a failure stands for ``retry_after`` seconds."""
        loop = asyncio.get_running_loop()
        slot = self._slots.get(loop)
        if slot is not None and slot.resource is not None:
            return slot.resource
        if slot is None:
            self._forget_closed_loops()
            slot = self._slots.setdefault(loop, _Slot())
        if slot.opening is None:
            opening = partial(self._open_into, loop, slot)
            slot.opening = SharedAttempt(opening, retry_after=self._retry_after)
        return await slot.opening()

    async def close(self) -> None:
        """Close the running loop's resource; others close with their own loops.

        An attempt still opening it is cancelled; the opener cleans up after itself.
        """
        self._forget_closed_loops()
        try:
            slot = self._slots.pop(asyncio.get_running_loop(), None)
        except RuntimeError:
            return
        if slot is None:
            return
        if slot.opening is not None:
            await slot.opening.cancel()
        if slot.guard is not None:
            await slot.guard.aclose()

    async def _open_into(self, loop: Loop, slot: _Slot[T]) -> T:
        """Open the resource into ``slot``, with what closes it when the loop shuts down."""
        resource = await self._open()
        guard = self._close_at_loop_shutdown(loop, resource)
        await guard.asend(None)
        slot.resource, slot.guard = resource, guard
        return resource

    async def _close_at_loop_shutdown(self, loop: Loop, resource: T) -> AsyncGenerator[None, None]:
        """Suspended while the resource lives; its ``finally`` closes it, whether
        ``close()`` ends it or the loop finalizes it while shutting down."""
        try:
            yield
        finally:
            slot = self._slots.get(loop)
            if slot is not None and slot.resource is resource:
                del self._slots[loop]
            with suppress(Exception):
                await self._close(resource)

    def _forget_closed_loops(self) -> None:
        """Drop resources whose loop closed without finalizing them; no loop runs
        their callbacks any more, so discarding them here is safe."""
        for loop in [loop for loop in self._slots if loop.is_closed()]:
            slot = self._slots.pop(loop)
            if slot.resource is not None:
                self._discard(slot.resource)

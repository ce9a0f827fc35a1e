"""A connection, pool or client per event loop.

A pool belongs to the event loop that opened it. Starlette's TestClient may run
each request in a new loop, and a store may be used from several loops at once
(threads, test runners), so each loop gets its own resource. A resource is
closed by ``close()`` in its loop, or while its loop shuts down (``asyncio.run``
finalizes async generators then); one left behind by a loop closed some other way
is discarded on the next use. Nothing is ever closed from a foreign thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
Loop = asyncio.AbstractEventLoop


@dataclass
class _Slot(Generic[T]):
    """One loop's resource, and what closes it when that loop shuts down."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    resource: T | None = None
    guard: AsyncGenerator[None, None] | None = None


class LoopLocal(Generic[T]):
    """Open a resource on first use in each event loop; reuse it within that loop."""

    def __init__(
        self,
        open: Callable[[], Awaitable[T]],
        close: Callable[[T], Awaitable[None]],
        discard: Callable[[T], None] = lambda resource: None,
    ) -> None:
        self._open = open
        self._close = close
        self._discard = discard
        self._slots: dict[Loop, _Slot[T]] = {}

    async def get(self) -> T:
        """Return this loop's resource, opening it (once, even under concurrency) if needed."""
        loop = asyncio.get_running_loop()
        slot = self._slots.get(loop)
        if slot is not None and slot.resource is not None:
            return slot.resource
        if slot is None:
            self._forget_closed_loops()
            slot = self._slots.setdefault(loop, _Slot())
        async with slot.lock:
            if slot.resource is None:
                resource = await self._open()
                guard = self._close_at_loop_shutdown(loop, resource)
                await guard.asend(None)
                slot.resource, slot.guard = resource, guard
            return slot.resource

    async def close(self) -> None:
        """Close the running loop's resource; others close with their own loops."""
        self._forget_closed_loops()
        try:
            slot = self._slots.pop(asyncio.get_running_loop(), None)
        except RuntimeError:
            return
        if slot is not None and slot.guard is not None:
            await slot.guard.aclose()

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

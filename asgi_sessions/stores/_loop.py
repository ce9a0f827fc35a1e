"""A connection, pool or client bound to the event loop that opened it.

Starlette's TestClient may run each request in a new event loop; a pool opened in
a loop that has since closed cannot be reused, so it is dropped and reopened. So
that nothing is left half-open when such a loop ends, the resource is also closed
while the loop shuts down (``asyncio.run`` finalizes async generators then).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import suppress
from typing import Generic, TypeVar

T = TypeVar("T")


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
        self._resource: T | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None
        self._guard: AsyncGenerator[None, None] | None = None

    async def get(self) -> T:
        """Return this loop's resource, opening it (once, even under concurrency) if needed."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._forget()
            self._loop, self._lock = loop, asyncio.Lock()
        if self._resource is None:
            assert self._lock is not None
            async with self._lock:
                if self._resource is None:
                    resource = await self._open()
                    self._resource = resource
                    self._guard = self._close_at_loop_shutdown(resource)
                    await self._guard.asend(None)
        return self._resource

    @property
    def current(self) -> T | None:
        """The resource if it is open in the running loop, else None."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        return self._resource if self._loop is loop else None

    async def close(self) -> None:
        """Close the resource if it belongs to the running loop; forget it otherwise."""
        resource = self.current
        if resource is None:
            self._forget()
            return
        self._resource = None
        guard, self._guard = self._guard, None
        if guard is not None:
            await guard.aclose()
        else:
            await self._close(resource)

    async def _close_at_loop_shutdown(self, resource: T) -> AsyncGenerator[None, None]:
        """Suspended while the resource lives; its ``finally`` closes it, whether
        ``close()`` ends it or the loop finalizes it while shutting down."""
        try:
            yield
        finally:
            if self._resource is resource:
                self._resource = None
            with suppress(Exception):
                await self._close(resource)

    def _forget(self) -> None:
        stale, self._resource = self._resource, None
        self._guard = None
        if stale is not None:
            self._discard(stale)

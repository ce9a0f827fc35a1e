"""A connection, pool or client bound to the event loop that opened it.

Starlette's TestClient may run each request in a new event loop; a pool opened in
a loop that has since closed cannot be reused, so it is dropped and reopened.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
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
                    self._resource = await self._open()
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
        await self._close(resource)

    def _forget(self) -> None:
        stale, self._resource = self._resource, None
        if stale is not None:
            self._discard(stale)

"""Per-name asyncio locks of one process, per event loop, kept only while in use.

The commit makes the writers of one session take turns with them, and a store whose
records live in this process holds a user's lock with them (``SessionStore.user_lock``).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager

from asgi_sessions.exceptions import StoreUnavailable

__all__ = ["LocalLocks", "file_lock", "polled"]


class LocalLocks:
    """One lock per name (and event loop); a name's lock is dropped when nobody holds or
    waits for it, so the table never outgrows what is in use."""

    def __init__(self) -> None:
        self._locks: dict[tuple[Hashable, ...], tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(
        self, *name: Hashable, wait_at_most: float | None = None
    ) -> AsyncIterator[None]:
        """Hold the lock of ``name``; waiting more than ``wait_at_most`` seconds is
        StoreUnavailable (the holder is stuck, as a down store would be)."""
        full = (asyncio.get_running_loop(), *name)
        lock, users = self._locks.get(full) or (asyncio.Lock(), 0)
        self._locks[full] = (lock, users + 1)
        try:
            try:
                async with asyncio.timeout(wait_at_most):
                    await lock.acquire()
            except TimeoutError:
                raise StoreUnavailable(
                    f"a session lock was not free within {wait_at_most:g} s; retry the request"
                ) from None
            try:
                yield
            finally:
                lock.release()
        finally:
            lock, users = self._locks[full]
            if users == 1:
                del self._locks[full]
            else:
                self._locks[full] = (lock, users - 1)


async def polled(take: Callable[[], Awaitable[bool]], wait_at_most: float, what: str) -> None:
    """Call ``take`` every few milliseconds until it returns True; after ``wait_at_most``
    seconds, StoreUnavailable saying ``what`` was held too long."""
    deadline = asyncio.get_running_loop().time() + wait_at_most
    while not await take():
        if asyncio.get_running_loop().time() > deadline:
            raise StoreUnavailable(f"{what} was held for more than {wait_at_most:g} s; retry")
        await asyncio.sleep(0.005)


@asynccontextmanager
async def file_lock(path: str, wait_at_most: float) -> AsyncIterator[None]:
    """An exclusive ``flock`` on ``path`` (created if missing), held across the processes
    of this host; waiting more than ``wait_at_most`` seconds is StoreUnavailable."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as error:
        raise StoreUnavailable(f"cannot open the lock file {path!r}: {error}") from error

    async def take() -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    try:
        await polled(take, wait_at_most, f"the lock file {path!r}")
        yield
    finally:
        os.close(fd)  # which releases the lock

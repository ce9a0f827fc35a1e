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


_Name = tuple[Hashable, ...]


class LocalLocks:
    """One lock per name (and event loop); a name's lock is dropped when nobody holds or
    waits for it, so the table never outgrows what is in use."""

    def __init__(self) -> None:
        self._turns: dict[_Name, _Turn] = {}

    def hold(self, *name: Hashable, wait_at_most: float | None = None) -> _Turn | _Bounded:
        """The lock of ``name``, to hold with ``async with``; waiting more than
        ``wait_at_most`` seconds is StoreUnavailable (the holder is stuck, as a down
        store would be)."""
        full = (asyncio.get_running_loop(), *name)
        turn = self._turns.get(full)
        if turn is None:
            turn = self._turns[full] = _Turn(self._turns, full)
        return turn if wait_at_most is None else _Bounded(turn, wait_at_most)


class _Turn:
    """The holders of one name, holding or awaiting their turn.

    A holder alone goes straight on; a lock is made only when a second one arrives, and
    they queue on it in order of arrival. Most session writes are alone at their key, so
    most never touch a lock.
    """

    __slots__ = ("_holders", "_lock", "_name", "_turns")

    def __init__(self, turns: dict[_Name, _Turn], name: _Name) -> None:
        self._turns = turns
        self._name = name
        self._holders = 0
        """How many hold or await this turn: when it falls to 0, the turn is gone."""
        self._lock: asyncio.Lock | None = None

    async def __aenter__(self) -> None:
        self._holders += 1
        if self._holders == 1:
            return
        try:
            if self._lock is None:
                self._lock = asyncio.Lock()
                await self._lock.acquire()  # held by the one already inside (free: no wait)
            await self._lock.acquire()
        except BaseException:
            self._leave()
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        self._leave()
        if self._holders:  # someone is waiting: hand the turn on
            assert self._lock is not None
            self._lock.release()

    def _leave(self) -> None:
        self._holders -= 1
        if not self._holders:
            del self._turns[self._name]


class _Bounded:
    """A turn waited for at most ``seconds``."""

    __slots__ = ("_seconds", "_turn")

    def __init__(self, turn: _Turn, seconds: float) -> None:
        self._turn, self._seconds = turn, seconds

    async def __aenter__(self) -> None:
        try:
            async with asyncio.timeout(self._seconds):
                await self._turn.__aenter__()
        except TimeoutError:
            raise StoreUnavailable(
                f"a session lock was not free within {self._seconds:g} s; retry the request"
            ) from None

    async def __aexit__(self, *exc_info: object) -> None:
        await self._turn.__aexit__(*exc_info)


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

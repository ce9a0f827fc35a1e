"""A store wrapper that records every call, for counting round trips without mocks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import TypeVar

import anyio

from asgi_sessions.exceptions import StoreUnavailable
from asgi_sessions.stores.base import CONTRACT, ProgressCallback, SessionRecord, SessionStore

_T = TypeVar("_T")


class Hold:
    """One call of the contract held on its way to the store, or on its way back, until
    ``release()``: a point where a test can cancel the caller or act meanwhile."""

    def __init__(self, name: str, *, after: bool) -> None:
        self.name = name
        self.after = after
        """Whether the call is held after the store answered rather than before it was sent."""
        self.reached = anyio.Event()
        """Set when a call is held."""
        self._released = anyio.Event()

    def release(self) -> None:
        """Let the held call go on."""
        self._released.set()

    async def wait(self) -> None:
        """Hold the calling task here until released."""
        self.reached.set()
        await self._released.wait()


class RecordingStore(SessionStore):
    """Delegates every call of the contract to a real store and appends its name to ``calls``.

    ``fail()`` makes calls raise StoreUnavailable, as a store that is down would:
    the fault is injected, the store behind it stays real. A call is recorded once, by
    the name the caller used: a cleanup is ``cleanup_expired_sessions``, not also the
    ``delete_expired`` the store behind runs for it.
    """

    EVERY_CALL = frozenset(CONTRACT)
    STREAMED = frozenset({"all", "delete_expired"})
    """Calls that yield as they go, rather than answer once: they cannot be held."""

    def __init__(self, store: SessionStore) -> None:
        super().__init__(clock=store.clock)
        self.store = store
        self.calls: list[str] = []
        self.failing: frozenset[str] = frozenset()
        self.holds: dict[str, Hold] = {}
        self.persistent = store.persistent
        self.timeout = store.timeout

    def _record(self, name: str) -> None:
        assert name in self.EVERY_CALL, f"{name} is not a call of the store contract"
        self.calls.append(name)
        if name in self.failing:
            raise StoreUnavailable(f"injected fault: store is down during {name}()")

    def fail(self, *names: str) -> None:
        """Make the named calls (every call if none named) raise StoreUnavailable."""
        unknown = set(names) - self.EVERY_CALL
        if unknown:
            raise ValueError(f"not calls of the store contract: {sorted(unknown)}")
        self.failing = frozenset(names) if names else self.EVERY_CALL

    def hold(self, name: str, *, after: bool = False) -> Hold:
        """Hold the next call of ``name`` before it reaches the store (with ``after``, once
        the store has answered) until the returned Hold is released."""
        if name not in self.EVERY_CALL - self.STREAMED:
            raise ValueError(f"{name!r} is not a call of the store contract that can be held")
        held = self.holds[name] = Hold(name, after=after)
        return held

    def heal(self) -> None:
        """Stop injecting faults, and let held calls go."""
        self.failing = frozenset()
        for held in self.holds.values():
            held.release()
        self.holds.clear()

    async def _run(self, name: str, call: Callable[[], Awaitable[_T]]) -> _T:
        """Record ``name``, then make the call, held where a test asked."""
        self._record(name)
        held = self.holds.pop(name, None)
        if held is not None and not held.after:
            await held.wait()
        result = await call()
        if held is not None and held.after:
            await held.wait()
        return result

    def reset(self) -> None:
        """Forget the calls recorded so far."""
        self.calls.clear()

    async def read(self, key: str) -> SessionRecord | None:
        return await self._run("read", lambda: self.store.read(key))

    async def create(self, record: SessionRecord) -> None:
        await self._run("create", lambda: self.store.create(record))

    async def update(self, record: SessionRecord, *, expected_version: int) -> bool:
        return await self._run(
            "update", lambda: self.store.update(record, expected_version=expected_version)
        )

    async def destroy(self, key: str, *, expected_version: int | None = None) -> bool:
        return await self._run(
            "destroy", lambda: self.store.destroy(key, expected_version=expected_version)
        )

    async def extend_lifetime(
        self, key: str, expires_at: datetime, *, expected_version: int | None = None
    ) -> bool:
        return await self._run(
            "extend_lifetime",
            lambda: self.store.extend_lifetime(key, expires_at, expected_version=expected_version),
        )

    async def cleanup_expired_sessions(
        self, *, batch_size: int = 1000, progress: ProgressCallback | None = None
    ) -> int:
        return await self._run(
            "cleanup_expired_sessions",
            lambda: self.store.cleanup_expired_sessions(batch_size=batch_size, progress=progress),
        )

    async def delete_expired(self, before: datetime, batch_size: int) -> AsyncIterator[int]:
        self._record("delete_expired")
        async for removed in self.store.delete_expired(before, batch_size):
            yield removed

    async def clear(self) -> int:
        return await self._run("clear", self.store.clear)

    async def count(self) -> int:
        return await self._run("count", self.store.count)

    async def ids(self) -> list[str]:
        return await self._run("ids", self.store.ids)

    async def all(self) -> AsyncIterator[SessionRecord]:
        self._record("all")
        async for record in self.store.all():
            yield record

    async def user_sessions(self, user_id: str) -> list[SessionRecord]:
        return await self._run("user_sessions", lambda: self.store.user_sessions(user_id))

    async def destroy_user_sessions(self, user_id: str, *, keep: str | None = None) -> int:
        return await self._run(
            "destroy_user_sessions", lambda: self.store.destroy_user_sessions(user_id, keep=keep)
        )

    async def close(self) -> None:
        await self._run("close", self.store.close)

"""A store wrapper that records every call, for counting round trips without mocks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

from asgi_sessions.exceptions import StoreUnavailable
from asgi_sessions.stores.base import CONTRACT, ProgressCallback, SessionRecord, SessionStore


class RecordingStore(SessionStore):
    """Delegates every call of the contract to a real store and appends its name to ``calls``.

    ``fail()`` makes calls raise StoreUnavailable, as a store that is down would:
    the fault is injected, the store behind it stays real. A call is recorded once, by
    the name the caller used: a cleanup is ``cleanup_expired_sessions``, not also the
    ``delete_expired`` the store behind runs for it.
    """

    EVERY_CALL = frozenset(CONTRACT)

    def __init__(self, store: SessionStore) -> None:
        super().__init__(clock=store.clock)
        self.store = store
        self.calls: list[str] = []
        self.failing: frozenset[str] = frozenset()
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

    def heal(self) -> None:
        """Stop injecting faults."""
        self.failing = frozenset()

    def reset(self) -> None:
        """Forget the calls recorded so far."""
        self.calls.clear()

    async def read(self, key: str) -> SessionRecord | None:
        self._record("read")
        return await self.store.read(key)

    async def create(self, record: SessionRecord) -> None:
        self._record("create")
        await self.store.create(record)

    async def update(self, record: SessionRecord, *, expected_version: int) -> bool:
        self._record("update")
        return await self.store.update(record, expected_version=expected_version)

    async def destroy(self, key: str, *, expected_version: int | None = None) -> bool:
        self._record("destroy")
        return await self.store.destroy(key, expected_version=expected_version)

    async def extend_lifetime(
        self,
        key: str,
        expires_at: datetime,
        *,
        expected_version: int | None = None,
        seen_at: datetime | None = None,
    ) -> bool:
        self._record("extend_lifetime")
        return await self.store.extend_lifetime(
            key, expires_at, expected_version=expected_version, seen_at=seen_at
        )

    async def cleanup_expired_sessions(
        self, *, batch_size: int = 1000, progress: ProgressCallback | None = None
    ) -> int:
        self._record("cleanup_expired_sessions")
        return await self.store.cleanup_expired_sessions(batch_size=batch_size, progress=progress)

    async def delete_expired(self, before: datetime, batch_size: int) -> AsyncIterator[int]:
        self._record("delete_expired")
        async for removed in self.store.delete_expired(before, batch_size):
            yield removed

    async def clear(self) -> int:
        self._record("clear")
        return await self.store.clear()

    async def count(self) -> int:
        self._record("count")
        return await self.store.count()

    async def ids(self) -> list[str]:
        self._record("ids")
        return await self.store.ids()

    async def all(self) -> AsyncIterator[SessionRecord]:
        self._record("all")
        async for record in self.store.all():
            yield record

    async def user_sessions(self, user_id: str) -> list[SessionRecord]:
        self._record("user_sessions")
        return await self.store.user_sessions(user_id)

    async def destroy_user_sessions(self, user_id: str, *, keep: str | None = None) -> int:
        self._record("destroy_user_sessions")
        return await self.store.destroy_user_sessions(user_id, keep=keep)

    async def close(self) -> None:
        self._record("close")
        await self.store.close()

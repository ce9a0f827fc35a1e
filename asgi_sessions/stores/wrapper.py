"""A store that hands every call of the contract to another store, around a hook.

Subclasses decide what happens around each call (``around``): ``RecordingStore``
counts calls and injects faults, ``TracedStore`` opens a span and times it. The
forwarding is written once, here, so a wrapper never misses a call of the contract.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from datetime import datetime

from asgi_sessions.stores.base import (
    DEFAULT_PAUSE_RATIO,
    ProgressCallback,
    SessionRecord,
    SessionStore,
)

__all__ = ["StoreWrapper"]


class StoreWrapper(SessionStore):
    """Forwards each call of the contract to ``store`` inside ``around(name)``.

    It takes the store's clock, timeout and persistence, so the middleware and the
    suites treat it as the store itself. A streamed call (``all``, ``delete_expired``)
    is inside ``around`` for as long as it streams.
    """

    def __init__(self, store: SessionStore) -> None:
        super().__init__(clock=store.clock)
        self.store = store
        self.persistent = store.persistent
        self.timeout = store.timeout

    def around(self, name: str) -> AbstractAsyncContextManager[object]:
        """What surrounds the call ``name`` of the contract; nothing by default."""
        return nullcontext()

    async def read(self, key: str) -> SessionRecord | None:
        async with self.around("read"):
            return await self.store.read(key)

    async def create(self, record: SessionRecord) -> None:
        async with self.around("create"):
            await self.store.create(record)

    async def update(self, record: SessionRecord, *, expected_version: int) -> bool:
        async with self.around("update"):
            return await self.store.update(record, expected_version=expected_version)

    async def destroy(self, key: str, *, expected_version: int | None = None) -> bool:
        async with self.around("destroy"):
            return await self.store.destroy(key, expected_version=expected_version)

    async def extend_lifetime(
        self,
        key: str,
        expires_at: datetime,
        *,
        expected_version: int | None = None,
        seen_at: datetime | None = None,
    ) -> bool:
        async with self.around("extend_lifetime"):
            return await self.store.extend_lifetime(
                key, expires_at, expected_version=expected_version, seen_at=seen_at
            )

    async def cleanup_expired_sessions(
        self,
        *,
        batch_size: int = 1000,
        progress: ProgressCallback | None = None,
        pause_ratio: float = DEFAULT_PAUSE_RATIO,
    ) -> int:
        async with self.around("cleanup_expired_sessions"):
            return await self.store.cleanup_expired_sessions(
                batch_size=batch_size, progress=progress, pause_ratio=pause_ratio
            )

    async def delete_expired(self, before: datetime, batch_size: int) -> AsyncIterator[int]:
        async with self.around("delete_expired"):
            async for removed in self.store.delete_expired(before, batch_size):
                yield removed

    async def clear(self) -> int:
        async with self.around("clear"):
            return await self.store.clear()

    async def count(self) -> int:
        async with self.around("count"):
            return await self.store.count()

    async def ids(self) -> list[str]:
        async with self.around("ids"):
            return await self.store.ids()

    async def all(self) -> AsyncIterator[SessionRecord]:
        async with self.around("all"):
            async for record in self.store.all():
                yield record

    async def user_sessions(self, user_id: str) -> list[SessionRecord]:
        async with self.around("user_sessions"):
            return await self.store.user_sessions(user_id)

    async def destroy_user_sessions(self, user_id: str, *, keep: str | None = None) -> int:
        async with self.around("destroy_user_sessions"):
            return await self.store.destroy_user_sessions(user_id, keep=keep)

    def user_lock(self, user_id: str) -> AbstractAsyncContextManager[None]:
        return self.store.user_lock(user_id)

    async def import_records(self, records: Sequence[SessionRecord]) -> Counter[str]:
        return await self.store.import_records(records)

    async def repair_user_index(
        self, *, batch_size: int = 1000, progress: ProgressCallback | None = None
    ) -> int:
        return await self.store.repair_user_index(batch_size=batch_size, progress=progress)

    async def close(self) -> None:
        async with self.around("close"):
            await self.store.close()

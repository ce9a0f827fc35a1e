"""A durable store behind a fast one, as Django's ``cached_db``: reads at the cache's speed,
records kept by the primary.

The primary (a SQL store) is the truth; the cache (a RedisStore, or any store) holds
copies. Reads ask the cache and fall back to the primary on a miss, then fill the cache.
Writes go to the primary, then to the cache.

The guarantee: once ``destroy`` or ``destroy_user_sessions`` has returned, no reader on any
worker gets that session again, even from the cache. Each ends the session in the cache
first, by a *tombstone*: a record under the session's key that readers take for "no
session" and that a fill cannot overwrite (a fill is a ``create``, refused on a live
key). Only then is the primary changed. A destroy or revoke that cannot reach the cache
raises StoreUnavailable before it touches the primary, so nothing is left that a cache
could still serve; retried, it completes. Reads stay one cache round trip.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, suppress
from datetime import datetime, timedelta

from asgi_sessions.stores._tasks import uninterrupted
from asgi_sessions.stores.base import (
    Clock,
    ProgressCallback,
    SessionExists,
    SessionRecord,
    SessionStore,
    StoreUnavailable,
)

__all__ = ["TieredStore"]

_TOMBSTONE_DATA = b"\x00asgi_sessions:ended"
_TOMBSTONE_VERSION = 0
_ATTEMPTS = 5

_Check = Callable[[SessionRecord], bool]
"""Whether the cache's copy of a record is up to date."""


def _is_tombstone(record: SessionRecord) -> bool:
    return record.version == _TOMBSTONE_VERSION and record.data == _TOMBSTONE_DATA


class TieredStore(SessionStore):
    """Reads from ``cache``, falling back to ``primary``; writes through to both.

    ``tombstone_lifetime`` is how long the cache keeps the marker of an ended session: at
    least as long as a request that read the primary before the end could take to fill
    the cache (a request's store work is bounded by the stores' timeouts). After that the
    key is simply absent from both tiers.
    """

    def __init__(
        self,
        primary: SessionStore,
        cache: SessionStore,
        *,
        clock: Clock | None = None,
        tombstone_lifetime: timedelta = timedelta(minutes=15),
    ) -> None:
        super().__init__(clock=clock or primary.clock)
        if tombstone_lifetime <= timedelta(0):
            raise ValueError(f"tombstone_lifetime={tombstone_lifetime!r} must be positive")
        self.primary = primary
        self.cache = cache
        self.tombstone_lifetime = tombstone_lifetime
        self.persistent = primary.persistent
        timeouts = [t for t in (cache.timeout, primary.timeout) if t is not None]
        self.timeout = sum(timeouts) if timeouts else None
        """A read may wait for the cache, then the primary."""

    # -- one record --------------------------------------------------------------------

    async def read(self, key: str) -> SessionRecord | None:
        """One cache round trip on a hit; on a miss, the primary, then a fill of the cache.

        A cache that cannot be reached is skipped: the primary's answer is the truth.
        """
        try:
            cached = await self.cache.read(key)
        except StoreUnavailable:
            return await self.primary.read(key)
        if cached is not None:
            return None if _is_tombstone(cached) else cached
        record = await self.primary.read(key)
        if record is not None:
            with suppress(SessionExists, StoreUnavailable):
                await self.cache.create(record)  # refused on a tombstone: no revival
        return record

    async def create(self, record: SessionRecord) -> None:
        """Into the cache first, then the primary, which decides whether the key is free.

        Cache first, so a revoke of the user running meanwhile either finds the copy in the
        cache's user index or ran before the primary took the record (a login after it).
        If the primary refuses, the copy is taken out again.
        """
        await uninterrupted(self._create(record))

    async def _create(self, record: SessionRecord) -> None:
        cached = await self._place_in_cache(record)
        try:
            await self.primary.create(record)
        except BaseException:
            if cached:
                with suppress(Exception):
                    await self.cache.destroy(record.key, expected_version=record.version)
            raise

    async def update(self, record: SessionRecord, *, expected_version: int) -> bool:
        """Compare-and-set on the primary; then the same on the cache's copy, or, where that
        fails, the copy is dropped so the next read fills from the primary."""
        return await uninterrupted(self._update(record, expected_version))

    async def _update(self, record: SessionRecord, expected_version: int) -> bool:
        updated = await self.primary.update(record, expected_version=expected_version)
        if updated:
            with suppress(StoreUnavailable):
                if await self.cache.update(record, expected_version=expected_version):
                    return True
            fresh = expected_version + 1
            await self._drop_copy_unless(record.key, lambda copy: copy.version == fresh)
        else:
            # The primary moved past ``expected_version`` or lost the record: a copy at or
            # below it is stale, and would send the writer's reload back to it.
            await self._drop_copy_unless(record.key, lambda copy: copy.version > expected_version)
        return updated

    async def destroy(self, key: str, *, expected_version: int | None = None) -> bool:
        """Tombstone the key in the cache (or fail, changing nothing), then delete it from
        the primary. A versioned destroy that loses takes its tombstone back."""
        return await uninterrupted(self._destroy(key, expected_version))

    async def _destroy(self, key: str, expected_version: int | None) -> bool:
        await self._tombstone(key)
        removed = await self.primary.destroy(key, expected_version=expected_version)
        if not removed and expected_version is not None:
            current = await self.primary.read(key)
            if current is not None:  # it lives on, changed: serve it again
                with suppress(StoreUnavailable):
                    await self.cache.destroy(key, expected_version=_TOMBSTONE_VERSION)
        return removed

    async def extend_lifetime(
        self,
        key: str,
        expires_at: datetime,
        *,
        expected_version: int | None = None,
        seen_at: datetime | None = None,
    ) -> bool:
        moving = self._extend_lifetime(key, expires_at, expected_version, seen_at)
        return await uninterrupted(moving)

    async def _extend_lifetime(
        self,
        key: str,
        expires_at: datetime,
        expected_version: int | None,
        seen_at: datetime | None,
    ) -> bool:
        moved = await self.primary.extend_lifetime(
            key, expires_at, expected_version=expected_version, seen_at=seen_at
        )
        if moved:
            try:
                copied = await self.cache.extend_lifetime(
                    key, expires_at, expected_version=expected_version, seen_at=seen_at
                )
            except StoreUnavailable:
                copied = True  # a copy expiring early only sends readers to the primary
            if not copied:
                await self._drop_copy_unless(key, lambda copy: False)
        return moved

    # -- many records ------------------------------------------------------------------

    async def delete_expired(self, before: datetime, batch_size: int) -> AsyncIterator[int]:
        """The primary's batches; then the cache is swept too, uncounted (a Redis cache
        expires its copies by itself)."""
        async for removed in self.primary.delete_expired(before, batch_size):
            yield removed
        with suppress(StoreUnavailable):
            async for _ in self.cache.delete_expired(before, batch_size):
                pass

    async def clear(self) -> int:
        """Empty the cache, the primary, then the cache again (for fills in between)."""
        return await uninterrupted(self._clear())

    async def _clear(self) -> int:
        await self.cache.clear()
        removed = await self.primary.clear()
        await self.cache.clear()
        return removed

    async def count(self) -> int:
        return await self.primary.count()

    async def ids(self) -> list[str]:
        return await self.primary.ids()

    async def all(self) -> AsyncIterator[SessionRecord]:
        async for record in self.primary.all():
            yield record

    async def user_sessions(self, user_id: str) -> list[SessionRecord]:
        return await self.primary.user_sessions(user_id)

    async def destroy_user_sessions(self, user_id: str, *, keep: str | None = None) -> int:
        """Tombstone every live session of the user the primary or the cache knows, delete
        them from the primary, then from the cache's user index whatever logged in
        meanwhile. Fails before touching the primary if the cache cannot be reached."""
        return await uninterrupted(self._destroy_user_sessions(user_id, keep))

    async def _destroy_user_sessions(self, user_id: str, keep: str | None) -> int:
        known = await self.primary.user_sessions(user_id)
        known += await self.cache.user_sessions(user_id)
        for key in dict.fromkeys(record.key for record in known):
            if key != keep:
                await self._tombstone(key)
        removed = await self.primary.destroy_user_sessions(user_id, keep=keep)
        await self.cache.destroy_user_sessions(user_id, keep=keep)
        return removed

    def user_lock(self, user_id: str) -> AbstractAsyncContextManager[None]:
        """The primary's lock of the user: every worker shares the primary."""
        return self.primary.user_lock(user_id)

    async def repair_user_index(
        self, *, batch_size: int = 1000, progress: ProgressCallback | None = None
    ) -> int:
        """Repair the primary's user index, then the cache's."""
        repaired = await self.primary.repair_user_index(batch_size=batch_size, progress=progress)
        return repaired + await self.cache.repair_user_index(batch_size=batch_size)

    async def close(self) -> None:
        try:
            await self.cache.close()
        finally:
            await self.primary.close()

    # -- the cache's copies ------------------------------------------------------------

    async def _place_in_cache(self, record: SessionRecord) -> bool:
        """Put ``record`` in the cache, replacing whatever holds its key; False if the
        cache cannot be reached (readers then fill it from the primary)."""
        try:
            for _ in range(_ATTEMPTS):
                try:
                    await self.cache.create(record)
                    return True
                except SessionExists:
                    await self.cache.destroy(record.key)
        except StoreUnavailable:
            pass
        return False

    async def _tombstone(self, key: str) -> None:
        """Make the cache answer "no session" for ``key`` until the tombstone expires.

        Whatever holds the key (a copy, a fill that slipped in) is replaced. Raises
        StoreUnavailable if the cache cannot be reached or keeps being refilled.
        """
        now = self.clock()
        tombstone = SessionRecord(
            key, _TOMBSTONE_DATA, None, now, now + self.tombstone_lifetime, _TOMBSTONE_VERSION
        )
        for _ in range(_ATTEMPTS):
            try:
                await self.cache.create(tombstone)
                return
            except SessionExists:
                await self.cache.destroy(key)
        raise StoreUnavailable(
            f"could not mark session {key[:12]}... ended in the cache: it kept being refilled;"
            " retry"
        )

    async def _drop_copy_unless(self, key: str, current: _Check) -> None:
        """Drop the cache's copy of ``key`` unless ``current(copy)`` says it is up to date.

        A tombstone always stays. Best effort: if the cache cannot be reached, the stale
        copy is dropped by the next writer that trips over it.
        """
        with suppress(StoreUnavailable):
            copy = await self.cache.read(key)
            if copy is not None and not _is_tombstone(copy) and not current(copy):
                await self.cache.destroy(key, expected_version=copy.version)

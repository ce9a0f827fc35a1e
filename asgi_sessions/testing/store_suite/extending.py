"""extend_lifetime: moves a live record's expiry, and nothing else; with a version, only
while the record still holds that version."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from asgi_sessions.stores.base import SessionStore
from asgi_sessions.testing.clock import FrozenClock
from asgi_sessions.testing.store_suite.fixtures import StoreFixtures
from asgi_sessions.testing.store_suite.support import HOUR, new_record

__all__ = ["StoreExtendLifetime"]


class StoreExtendLifetime(StoreFixtures):
    """``extend_lifetime`` moves the expiry of a live record without touching its version."""

    async def test_extend_lifetime_moves_only_the_expiry(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = new_record(clock, user_id="ada", lifetime=60, version=4)
        await store.create(record)
        later = clock() + timedelta(hours=3, microseconds=7)
        assert await store.extend_lifetime(record.key, later) is True
        clock.advance(HOUR)  # well past the old expiry
        assert await store.read(record.key) == dataclasses.replace(record, expires_at=later)
        assert await store.user_sessions("ada") == [dataclasses.replace(record, expires_at=later)]

    async def test_extend_lifetime_keeps_the_version_so_a_loaded_update_still_succeeds(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = new_record(clock)
        await store.create(record)
        await store.extend_lifetime(record.key, clock() + timedelta(hours=2))
        changed = dataclasses.replace(record, data=b"changed")
        assert await store.update(changed, expected_version=1) is True

    async def test_extend_lifetime_can_shorten_the_lifetime(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = new_record(clock, lifetime=HOUR)
        await store.create(record)
        await store.extend_lifetime(record.key, clock() + timedelta(seconds=10))
        clock.advance(10)
        assert await store.read(record.key) is None

    async def test_extend_lifetime_with_the_current_version_moves_the_expiry(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = new_record(clock, version=4)
        await store.create(record)
        later = clock() + timedelta(hours=2)
        assert await store.extend_lifetime(record.key, later, expected_version=4) is True
        assert await store.read(record.key) == dataclasses.replace(record, expires_at=later)

    async def test_extend_lifetime_with_a_stale_version_returns_false_and_moves_nothing(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        """A slide computed from a loaded record must not undo a newer expiry."""
        record = new_record(clock)
        await store.create(record)
        newer = dataclasses.replace(record, expires_at=clock() + timedelta(minutes=5))
        assert await store.update(newer, expected_version=1) is True
        later = clock() + timedelta(hours=2)
        assert await store.extend_lifetime(record.key, later, expected_version=1) is False
        assert await store.read(record.key) == dataclasses.replace(newer, version=2)

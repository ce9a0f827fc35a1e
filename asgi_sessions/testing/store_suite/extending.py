"""extend_lifetime: moves a live record's expiry, and nothing else."""

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
        await store.extend_lifetime(record.key, later)
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

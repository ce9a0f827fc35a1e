"""update: compare-and-set on the version, which it bumps; it never re-creates a record."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from functools import partial

import pytest

from asgi_sessions.stores.base import SessionStore
from asgi_sessions.testing.clock import FrozenClock
from asgi_sessions.testing.store_suite.fixtures import StoreFixtures
from asgi_sessions.testing.store_suite.support import HOUR, concurrently, new_record

__all__ = ["StoreUpdate"]


class StoreUpdate(StoreFixtures):
    """``update`` writes only over the version it was given, and bumps it by one."""

    async def test_update_with_the_current_version_replaces_fields_and_bumps_the_version(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        original = new_record(clock, data=b"before", user_id="ada", age=30)
        await store.create(original)
        clock.advance(5)
        changed = dataclasses.replace(
            original,
            data=b"after",
            user_id="bob",
            created_at=clock(),  # ignored: created_at never changes
            expires_at=clock() + timedelta(hours=2, microseconds=3),
        )
        assert await store.update(changed, expected_version=1) is True
        assert await store.read(original.key) == dataclasses.replace(
            changed, created_at=original.created_at, version=2
        )

    async def test_successive_updates_bump_the_version_by_one_each(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = new_record(clock, version=3)
        await store.create(record)
        for version in range(3, 8):
            changed = dataclasses.replace(record, data=b"v%d" % version)
            assert await store.update(changed, expected_version=version) is True
            stored = await store.read(record.key)
            assert stored is not None
            assert (stored.version, stored.data) == (version + 1, b"v%d" % version)

    @pytest.mark.parametrize("expected_version", [0, 2, 5])
    async def test_update_with_another_version_returns_false_and_changes_nothing(
        self, store: SessionStore, clock: FrozenClock, expected_version: int
    ) -> None:
        original = new_record(clock, version=1, user_id="ada")
        await store.create(original)
        changed = dataclasses.replace(original, data=b"lost", user_id="bob")
        assert await store.update(changed, expected_version=expected_version) is False
        assert await store.read(original.key) == original
        assert await store.user_sessions("bob") == []

    async def test_update_of_a_stale_version_after_another_update_returns_false(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        original = new_record(clock)
        await store.create(original)
        first = dataclasses.replace(original, data=b"first")
        late = dataclasses.replace(original, data=b"late")
        assert await store.update(first, expected_version=1) is True
        assert await store.update(late, expected_version=1) is False
        assert await store.read(original.key) == dataclasses.replace(first, version=2)

    async def test_concurrent_updates_with_the_same_version_let_exactly_one_win(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        original = new_record(clock)
        await store.create(original)
        rivals = [dataclasses.replace(original, data=b"rival %d" % n) for n in range(5)]
        won = await concurrently(
            *[partial(store.update, rival, expected_version=1) for rival in rivals]
        )
        assert won.count(True) == 1
        winner = rivals[won.index(True)]
        assert await store.read(original.key) == dataclasses.replace(winner, version=2)

    async def test_update_can_shorten_the_lifetime(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = new_record(clock, lifetime=HOUR)
        await store.create(record)
        shorter = dataclasses.replace(record, expires_at=clock() + timedelta(seconds=10))
        assert await store.update(shorter, expected_version=1) is True
        clock.advance(10)
        assert await store.read(record.key) is None

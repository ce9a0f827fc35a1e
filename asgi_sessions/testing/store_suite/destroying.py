"""destroy: removes a record, live or expired, says whether a live one went, and with a
version retires only the record it names."""

from __future__ import annotations

import dataclasses
from functools import partial

from asgi_sessions.stores.base import SessionStore
from asgi_sessions.testing.clock import FrozenClock
from asgi_sessions.testing.store_suite.fixtures import StoreFixtures
from asgi_sessions.testing.store_suite.support import (
    collect,
    concurrently,
    new_key,
    new_record,
)

__all__ = ["StoreDestroy"]


class StoreDestroy(StoreFixtures):
    """``destroy`` removes the record from every view of the store and answers whether a
    live record was removed."""

    async def test_destroy_removes_the_record_everywhere(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = new_record(clock, user_id="ada")
        await store.create(record)
        assert await store.destroy(record.key) is True
        assert await store.read(record.key) is None
        assert await store.count() == 0
        assert await store.ids() == []
        assert await collect(store.all()) == []
        assert await store.user_sessions("ada") == []

    async def test_destroy_is_idempotent_and_only_the_first_removes_a_live_record(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = new_record(clock)
        await store.create(record)
        assert await store.destroy(record.key) is True
        assert await store.destroy(record.key) is False
        assert await store.read(record.key) is None

    async def test_destroy_of_an_unknown_key_returns_false_and_is_not_an_error(
        self, store: SessionStore
    ) -> None:
        assert await store.destroy(new_key()) is False
        assert await store.count() == 0

    async def test_destroy_of_an_expired_record_removes_it_and_returns_false(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = new_record(clock, user_id="ada", lifetime=60)
        await store.create(record)
        clock.advance(60)
        assert await store.destroy(record.key) is False
        assert await store.clear() == 0, "the expired record is gone, not left for cleanup"

    async def test_destroy_with_the_current_version_removes_the_record(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = new_record(clock, user_id="ada", version=3)
        await store.create(record)
        assert await store.destroy(record.key, expected_version=3) is True
        assert await store.read(record.key) is None
        assert await store.user_sessions("ada") == []

    async def test_destroy_with_a_stale_version_returns_false_and_keeps_the_newer_record(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = new_record(clock, user_id="ada")
        await store.create(record)
        newer = dataclasses.replace(record, data=b"written meanwhile")
        assert await store.update(newer, expected_version=1) is True
        assert await store.destroy(record.key, expected_version=1) is False
        assert await store.read(record.key) == dataclasses.replace(newer, version=2)
        assert await store.user_sessions("ada") == [dataclasses.replace(newer, version=2)]

    async def test_a_versioned_destroy_racing_an_update_of_that_version_has_one_winner(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        """Regenerate retiring the record it loaded while another request updates it:
        either the record is gone, or it holds the update, never both or neither."""
        for _ in range(20):
            record = new_record(clock)
            await store.create(record)
            changed = dataclasses.replace(record, data=b"changed")
            destroyed, updated = await concurrently(
                partial(store.destroy, record.key, expected_version=1),
                partial(store.update, changed, expected_version=1),
            )
            assert destroyed != updated, "exactly one of them wins"
            expected = None if destroyed else dataclasses.replace(changed, version=2)
            assert await store.read(record.key) == expected

    async def test_a_destroyed_key_can_be_created_again(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = new_record(clock, data=b"first life")
        await store.create(record)
        await store.destroy(record.key)
        again = dataclasses.replace(record, data=b"second life")
        await store.create(again)
        assert await store.read(record.key) == again

"""destroy: removes a record, live or expired, and is idempotent."""

from __future__ import annotations

import dataclasses

from asgi_sessions.stores.base import SessionStore
from asgi_sessions.testing.clock import FrozenClock
from asgi_sessions.testing.store_suite.fixtures import StoreFixtures
from asgi_sessions.testing.store_suite.support import collect, new_key, new_record

__all__ = ["StoreDestroy"]


class StoreDestroy(StoreFixtures):
    """``destroy`` removes the record from every view of the store."""

    async def test_destroy_removes_the_record_everywhere(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = new_record(clock, user_id="ada")
        await store.create(record)
        await store.destroy(record.key)
        assert await store.read(record.key) is None
        assert await store.count() == 0
        assert await store.ids() == []
        assert await collect(store.all()) == []
        assert await store.user_sessions("ada") == []

    async def test_destroy_is_idempotent(self, store: SessionStore, clock: FrozenClock) -> None:
        record = new_record(clock)
        await store.create(record)
        await store.destroy(record.key)
        await store.destroy(record.key)
        assert await store.read(record.key) is None

    async def test_destroy_of_an_unknown_key_is_not_an_error(self, store: SessionStore) -> None:
        await store.destroy(new_key())
        assert await store.count() == 0

    async def test_a_destroyed_key_can_be_created_again(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = new_record(clock, data=b"first life")
        await store.create(record)
        await store.destroy(record.key)
        again = dataclasses.replace(record, data=b"second life")
        await store.create(again)
        assert await store.read(record.key) == again

"""count, ids, all and clear: the whole namespace, live records only (clear: every record)."""

from __future__ import annotations

import dataclasses

from asgi_sessions.stores.base import SessionStore
from asgi_sessions.testing.clock import FrozenClock
from asgi_sessions.testing.store_suite.fixtures import StoreFixtures
from asgi_sessions.testing.store_suite.reading import DATA_SAMPLES
from asgi_sessions.testing.store_suite.support import HOUR, collect, new_record

__all__ = ["StoreListing"]


class StoreListing(StoreFixtures):
    """``count``, ``ids`` and ``all`` agree on the live records; ``clear`` removes them all."""

    async def test_an_empty_store_has_no_records(self, store: SessionStore) -> None:
        assert await store.count() == 0
        assert await store.ids() == []
        assert await collect(store.all()) == []

    async def test_count_ids_and_all_agree_and_leave_out_expired_records(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        live = [new_record(clock, user_id=f"user-{n}", age=n) for n in range(4)]
        expired = [new_record(clock, lifetime=60) for _ in range(3)]
        for record in [*live, *expired]:
            await store.create(record)
        clock.advance(60)
        records = await collect(store.all())
        assert await store.count() == len(live)
        assert sorted(await store.ids()) == sorted(record.key for record in live)
        assert sorted(records, key=lambda r: r.key) == sorted(live, key=lambda r: r.key)

    async def test_all_yields_full_records_with_their_current_version(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = new_record(clock, data=DATA_SAMPLES["not-utf8"], user_id="ada")
        await store.create(record)
        changed = dataclasses.replace(record, data=b"changed")
        await store.update(changed, expected_version=1)
        assert await collect(store.all()) == [dataclasses.replace(changed, version=2)]

    async def test_an_abandoned_iteration_leaves_the_store_usable(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        await self.create_many(store, clock, 30)
        async for _ in store.all():
            break
        record = new_record(clock)
        await store.create(record)
        assert await store.read(record.key) == record
        assert await store.count() == 31

    async def test_many_records_are_all_counted_listed_and_iterated(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        records = await self.create_many(store, clock, 2500)
        keys = sorted(record.key for record in records)
        assert await store.count() == 2500
        assert sorted(await store.ids()) == keys
        seen = [record.key async for record in store.all()]
        assert len(seen) == 2500, "all() yielded some records twice or left some out"
        assert sorted(seen) == keys

    async def test_clear_removes_live_and_expired_records_and_returns_their_number(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        await store.create(new_record(clock, lifetime=60, user_id="ada"))
        await store.create(new_record(clock, lifetime=HOUR, user_id="ada"))
        await store.create(new_record(clock, lifetime=HOUR))
        clock.advance(60)
        assert await store.clear() == 3
        assert await store.count() == 0
        assert await store.user_sessions("ada") == []
        assert await store.cleanup_expired_sessions() == 0

    async def test_clear_of_an_empty_store_returns_zero(self, store: SessionStore) -> None:
        assert await store.clear() == 0

    async def test_a_cleared_store_accepts_new_records(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        old = new_record(clock)
        await store.create(old)
        await store.clear()
        await store.create(old)
        assert await store.read(old.key) == old

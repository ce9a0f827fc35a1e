"""cleanup_expired_sessions: batched, reported, and safe to cancel or to run twice at once."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import anyio

from asgi_sessions.stores.base import Clock, SessionStore
from asgi_sessions.testing.clock import FrozenClock
from asgi_sessions.testing.store_suite.fixtures import StoreFixtures
from asgi_sessions.testing.store_suite.support import (
    HOUR,
    concurrently,
    new_record,
    sharing_one_namespace,
)

__all__ = ["StoreCleanup"]


class StoreCleanup(StoreFixtures):
    """Cleanup deletes records expired more than ``cleanup_grace`` ago, in batches."""

    async def test_cleanup_removes_exactly_the_expired_records_and_returns_their_number(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        grace = store.cleanup_grace.total_seconds()
        expired = [new_record(clock, user_id="ada", lifetime=60) for _ in range(3)]
        at_the_edge = new_record(clock, lifetime=120)
        live = [new_record(clock, user_id="ada", lifetime=grace + 121, age=n) for n in (2, 1)]
        for record in [*expired, at_the_edge, *live]:
            await store.create(record)
        clock.advance(120 + grace)  # at_the_edge expired exactly cleanup_grace ago
        assert await store.cleanup_expired_sessions() == 4
        assert sorted(await store.ids()) == sorted(record.key for record in live)
        assert await store.user_sessions("ada") == live
        assert await store.clear() == 2  # nothing expired was left behind

    async def test_cleanup_deletes_in_batches_and_reports_the_running_total(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        await self.create_many(store, clock, 25, lifetime=60)
        live = new_record(clock, lifetime=HOUR)
        await store.create(live)
        clock.advance(60)
        clock.now += store.cleanup_grace
        totals: list[int] = []
        assert await store.cleanup_expired_sessions(batch_size=10, progress=totals.append) == 25
        assert totals, "progress was never called"
        assert totals[-1] == 25
        steps = [after - before for before, after in zip([0, *totals], totals, strict=False)]
        assert all(0 < step <= 10 for step in steps), f"batches of {steps}, limit 10"
        assert await store.ids() == [live.key]

    async def test_a_second_cleanup_finds_nothing(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        await store.create(new_record(clock, lifetime=60))
        clock.advance(60)
        clock.now += store.cleanup_grace
        assert await store.cleanup_expired_sessions() == 1
        assert await store.cleanup_expired_sessions() == 0

    async def test_cleanup_with_nothing_expired_removes_nothing_and_reports_zero(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = new_record(clock)
        await store.create(record)
        totals: list[int] = []
        assert await store.cleanup_expired_sessions(batch_size=1, progress=totals.append) == 0
        assert totals == [0]
        assert await store.read(record.key) == record

    async def test_a_cleanup_cancelled_between_batches_leaves_the_rest_to_the_next(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        for _ in range(5):
            await store.create(new_record(clock, lifetime=60))
        live = new_record(clock, lifetime=HOUR)
        await store.create(live)
        clock.advance(60)
        clock.now += store.cleanup_grace
        with anyio.CancelScope() as scope:
            await store.cleanup_expired_sessions(batch_size=2, progress=lambda _: scope.cancel())
        assert scope.cancelled_caught
        assert await store.read(live.key) == live
        await store.cleanup_expired_sessions()
        assert await store.clear() == 1, "a later sweep leaves nothing expired behind"

    async def test_two_stores_sweeping_at_once_remove_each_expired_record_once(
        self, make_store: Callable[[Clock], SessionStore], clock: FrozenClock
    ) -> None:
        async with sharing_one_namespace(make_store, clock, clock) as (first, second):
            await self.create_many(first, clock, 120, lifetime=60)
            live = new_record(clock, lifetime=HOUR)
            await first.create(live)
            clock.advance(60)
            clock.now += first.cleanup_grace
            seen: tuple[list[int], list[int]] = ([], [])
            removed = await concurrently(
                partial(first.cleanup_expired_sessions, batch_size=7, progress=seen[0].append),
                partial(second.cleanup_expired_sessions, batch_size=7, progress=seen[1].append),
            )
            assert sum(removed) == 120
            for totals, total in zip(seen, removed, strict=True):
                assert totals == sorted(totals)
                assert totals[-1] == total
            assert await second.clear() == 1

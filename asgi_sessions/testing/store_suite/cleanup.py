"""cleanup_expired_sessions: batched, reported, and safe to cancel or to run twice at once."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from functools import partial

import anyio
import pytest

from asgi_sessions.stores.base import Clock, SessionStore
from asgi_sessions.stores.wrapper import StoreWrapper
from asgi_sessions.testing.clock import FrozenClock
from asgi_sessions.testing.store_suite.fixtures import StoreFixtures
from asgi_sessions.testing.store_suite.support import (
    HOUR,
    TINY,
    concurrently,
    new_record,
    sharing_one_namespace,
)

__all__ = ["StoreCleanup"]

SLOW_BATCH = 0.02
"""How long each batch is made to take in the pacing test, in seconds."""

CLOCK_SLACK = 0.005
"""asyncio may wake a sleeper up to its clock's resolution early."""


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

    async def test_cleanup_pauses_after_each_batch_for_pause_ratio_times_its_length(
        self, store: SessionStore, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The sweep leaves the store to the app between batches: each batch is made to
        take at least SLOW_BATCH here, and the next must not start before twice that."""
        for _ in range(3):
            await store.create(new_record(clock, lifetime=60))
        clock.advance(60)
        clock.now += store.cleanup_grace
        swept = store  # a wrapper hands the whole sweep to the store it wraps
        while isinstance(swept, StoreWrapper):
            swept = swept.store
        sweep, pauses = swept.delete_expired, list[float]()

        async def slow_sweep(before: datetime, batch_size: int) -> AsyncIterator[int]:
            async for removed in sweep(before, batch_size):
                await anyio.sleep(SLOW_BATCH)
                done = anyio.current_time()
                yield removed
                pauses.append(anyio.current_time() - done)

        monkeypatch.setattr(swept, "delete_expired", slow_sweep)
        assert await store.cleanup_expired_sessions(batch_size=1, pause_ratio=2) == 3
        assert len(pauses) >= 3
        assert min(pauses) >= 2 * SLOW_BATCH - CLOCK_SLACK, pauses
        with pytest.raises(ValueError, match="pause_ratio"):
            await store.cleanup_expired_sessions(pause_ratio=-1)

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

    async def test_a_record_renewed_while_cleanup_runs_is_kept(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        """Requests go on between batches: a key whose expired record is replaced by a
        new login meanwhile must keep the new record, whichever batch held the old one."""
        expired = [new_record(clock, lifetime=60) for _ in range(6)]
        for record in expired:
            await store.create(record)
        clock.advance(60)
        clock.now += store.cleanup_grace
        renewed = new_record(clock, key=expired[-1].key, data=b"a new login")
        first_batch_done = anyio.Event()

        async def renew() -> None:
            await first_batch_done.wait()
            await store.create(renewed)

        async with anyio.create_task_group() as group:
            group.start_soon(renew)
            await store.cleanup_expired_sessions(
                batch_size=2, progress=lambda _: first_batch_done.set()
            )
        assert await store.read(renewed.key) == renewed

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

    async def test_cleanup_keeps_a_record_for_the_grace_after_its_expiry_then_removes_it(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        """Readers stop seeing a record at expires_at; cleanup waits cleanup_grace more, so
        a worker whose clock runs that much ahead deletes nothing live for the others."""
        record = new_record(clock, user_id="ada", lifetime=60)
        await store.create(record)
        clock.now = record.expires_at + store.cleanup_grace - TINY
        assert await store.read(record.key) is None
        assert await store.count() == 0
        assert await store.user_sessions("ada") == []
        assert await store.cleanup_expired_sessions() == 0
        clock.now = record.expires_at - TINY  # a neighbour's clock: the record is kept
        assert await store.read(record.key) == record
        clock.now = record.expires_at + store.cleanup_grace
        assert await store.cleanup_expired_sessions() == 1
        clock.now = record.expires_at - TINY
        assert await store.read(record.key) is None

    async def test_cleanup_from_a_store_whose_clock_runs_fast_deletes_nothing_live(
        self, make_store: Callable[[Clock], SessionStore], clock: FrozenClock
    ) -> None:
        fast = FrozenClock(clock() + timedelta(minutes=10))
        async with sharing_one_namespace(make_store, clock, fast) as (worker, sweeper):
            long_gone = new_record(clock, lifetime=60)
            ending = new_record(clock, user_id="ada", lifetime=25 * 60)
            for record in (long_gone, ending):
                await worker.create(record)
            clock.advance(minutes=20)  # ending has 5 minutes left, long_gone ended 19 ago
            fast.advance(minutes=20)  # by this clock ending ended 5 minutes ago
            assert await sweeper.cleanup_expired_sessions() == 1
            assert await worker.read(ending.key) == ending
            assert await worker.user_sessions("ada") == [ending]
            assert await worker.read(long_gone.key) is None

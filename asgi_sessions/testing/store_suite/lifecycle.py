"""Close and reopen, several store objects on one namespace, event loops, cancellation."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest

from asgi_sessions.stores.base import Clock, SessionStore
from asgi_sessions.testing.clock import FrozenClock
from asgi_sessions.testing.store_suite.fixtures import StoreFixtures
from asgi_sessions.testing.store_suite.support import (
    HOUR,
    collect,
    concurrently,
    create_or_exists,
    new_key,
    new_record,
    require_persistent,
    sharing_one_namespace,
)

__all__ = ["StoreLifecycle"]


async def turns(number: int) -> None:
    """Let the event loop run ``number`` times before going on."""
    for _ in range(number):
        await asyncio.sleep(0)


class StoreLifecycle(StoreFixtures):
    """A store connects when used, reconnects after close or in a new event loop, shares its
    records with other store objects on its namespace, and survives cancelled calls."""

    async def test_close_of_an_unused_store_is_fine(
        self, make_store: Callable[[Clock], SessionStore], clock: FrozenClock
    ) -> None:
        store = make_store(clock)
        await store.close()
        await store.close()

    async def test_a_closed_store_reconnects_when_used_again(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        first = new_record(clock)
        await store.create(first)
        await store.close()
        second = new_record(clock)
        await store.create(second)
        await store.close()
        await store.close()
        assert await store.read(second.key) == second
        if store.persistent:
            assert await store.read(first.key) == first

    async def test_async_with_returns_the_store_and_closes_it(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = new_record(clock)
        async with store as entered:
            assert entered is store
            await store.create(record)
        assert await store.read(record.key) == record  # reconnected after the close

    async def test_records_outlive_the_store_object(
        self, make_store: Callable[[Clock], SessionStore], clock: FrozenClock
    ) -> None:
        first = make_store(clock)
        require_persistent(first)
        record = new_record(clock, user_id="ada")
        async with first:
            await first.create(record)
        async with make_store(clock) as second:
            assert await second.read(record.key) == record
            assert await second.user_sessions("ada") == [record]
            assert await second.count() == 1

    async def test_stores_over_one_namespace_see_each_others_writes(
        self, make_store: Callable[[Clock], SessionStore], clock: FrozenClock
    ) -> None:
        async with sharing_one_namespace(make_store, clock, clock) as (first, second):
            record = new_record(clock)
            await first.create(record)
            assert await second.read(record.key) == record
            changed = dataclasses.replace(record, data=b"changed")
            assert await second.update(changed, expected_version=1) is True
            assert await first.update(changed, expected_version=1) is False
            await first.destroy(record.key)
            assert await second.read(record.key) is None

    async def test_races_between_two_store_objects_have_exactly_one_winner(
        self, make_store: Callable[[Clock], SessionStore], clock: FrozenClock
    ) -> None:
        async with sharing_one_namespace(make_store, clock, clock) as (first, second):
            key = new_key()
            candidates = [new_record(clock, key=key, data=b"%d" % n) for n in range(6)]
            won = await concurrently(
                *[
                    partial(create_or_exists, (first, second)[n % 2], c)
                    for n, c in enumerate(candidates)
                ]
            )
            assert won.count(True) == 1
            rivals = [
                dataclasses.replace(c, data=b"rival %d" % n) for n, c in enumerate(candidates)
            ]
            updated = await concurrently(
                *[
                    partial((first, second)[n % 2].update, rival, expected_version=1)
                    for n, rival in enumerate(rivals)
                ]
            )
            assert updated.count(True) == 1
            winner = dataclasses.replace(rivals[updated.index(True)], version=2)
            assert await first.read(key) == winner
            assert await second.read(key) == winner

    async def test_each_store_decides_expiry_by_its_own_clock(
        self, make_store: Callable[[Clock], SessionStore], clock: FrozenClock
    ) -> None:
        later = FrozenClock(clock() + timedelta(hours=1))
        async with sharing_one_namespace(make_store, clock, later) as (now_store, later_store):
            record = new_record(clock, lifetime=HOUR)
            await now_store.create(record)
            assert await now_store.read(record.key) == record
            assert await later_store.read(record.key) is None
            assert await later_store.count() == 0

    @pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
    async def test_the_store_works_from_one_event_loop_after_another(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        """As Starlette's TestClient does: each request in a new event loop, closed after
        it. Connections of a finished loop are reopened, never reused, and leave nothing
        that complains when collected."""
        record = new_record(clock, user_id="ada")
        changed = dataclasses.replace(record, data=b"changed")
        steps: list[Callable[[], Awaitable[object]]] = [
            partial(store.create, record),
            partial(store.read, record.key),
            partial(store.update, changed, expected_version=1),
            partial(store.user_sessions, "ada"),
            store.close,
        ]
        answers = []
        for step in steps:

            def in_a_new_loop(step: Callable[[], Awaitable[object]] = step) -> object:
                async def run() -> object:
                    return await step()

                return asyncio.run(run())

            answers.append(await anyio.to_thread.run_sync(in_a_new_loop))
        assert answers == [None, record, True, [dataclasses.replace(changed, version=2)], None]
        assert await store.read(record.key) == dataclasses.replace(changed, version=2)
        assert await store.update(record, expected_version=2) is True
        gc.collect()

    async def test_cancelled_calls_leave_the_store_consistent_and_usable(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = new_record(clock, data=b"version 1")
        await store.create(record)
        for checkpoints in range(16):
            current = await store.read(record.key)
            assert current is not None
            assert current.data == b"version %d" % current.version, "half-written update"
            changed = dataclasses.replace(current, data=b"version %d" % (current.version + 1))
            async with anyio.create_task_group() as group:
                group.start_soon(partial(store.update, changed, expected_version=current.version))
                group.start_soon(store.read, record.key)
                group.start_soon(store.create, new_record(clock))
                group.start_soon(store.count)
                group.start_soon(collect, store.all())
                for _ in range(checkpoints):
                    await anyio.lowlevel.checkpoint()
                group.cancel_scope.cancel()
        current = await store.read(record.key)
        assert current is not None
        changed = dataclasses.replace(current, data=b"after the cancellations")
        assert await store.update(changed, expected_version=current.version) is True
        assert len(await store.ids()) == await store.count()

    async def test_reads_cancelled_at_any_point_leave_every_connection_in_step(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        """More reads at once than a pool holds, cancelled at every stage: afterwards each
        read gets its own record, never a reply left over from a cancelled one."""
        records = [new_record(clock, data=b"record %d" % n) for n in range(60)]
        for record in records:
            await store.create(record)
        for checkpoints in range(24):
            async with anyio.create_task_group() as group:
                for record in records:
                    group.start_soon(store.read, record.key)
                for _ in range(checkpoints):
                    await anyio.lowlevel.checkpoint()
                group.cancel_scope.cancel()
            with anyio.fail_after(30):
                reads = [partial(store.read, record.key) for record in records]
                assert await concurrently(*reads) == records

    async def test_a_cancelled_call_ends_cancelled(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        """A call cancelled before it finished raises CancelledError: a driver that drops
        the cancellation would keep a stopping task (a sweeper at shutdown) running. Each
        call is cancelled after a number of event loop turns, then after a moment on the
        wire, to catch it at every stage."""
        record = new_record(clock)
        await store.create(record)
        calls: list[Callable[[], Awaitable[object]]] = [
            partial(store.read, record.key),
            partial(store.extend_lifetime, record.key, record.expires_at),
            store.count,
            store.cleanup_expired_sessions,
        ]
        waits = [partial(turns, n) for n in range(30)]
        waits += [partial(asyncio.sleep, n / 10_000) for n in range(1, 40)]
        finished_anyway = []
        for number, wait in enumerate(waits):
            for call in calls:
                task = asyncio.ensure_future(call())
                await wait()
                if not task.cancel():
                    continue  # it had finished: there was nothing to cancel
                try:
                    await task
                except asyncio.CancelledError:
                    continue
                finished_anyway.append((getattr(call, "func", call).__name__, number))
        assert finished_anyway == [], "cancelled calls returned normally"
        assert await store.read(record.key) == record

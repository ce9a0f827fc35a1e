"""The user's lock, and the session limit it keeps: one login of a user at a time in
every process, so concurrent logins never leave more sessions than the limit."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from functools import partial

import anyio
import pytest

from asgi_sessions.exceptions import SessionLimitReached
from asgi_sessions.limits import SessionLimit, within_limit
from asgi_sessions.stores.base import Clock, SessionRecord, SessionStore
from asgi_sessions.stores.wrapper import StoreWrapper
from asgi_sessions.testing.clock import FrozenClock
from asgi_sessions.testing.store_suite.fixtures import StoreFixtures
from asgi_sessions.testing.store_suite.support import new_record

__all__ = ["StoreUserLimit"]

LOGINS = 20
LIMIT = 3


class StoreUserLimit(StoreFixtures):
    """``user_lock`` holds across store objects (as across processes), and
    ``within_limit`` on it leaves exactly the limit, whichever policy."""

    @pytest.fixture
    async def workers(
        self, store: SessionStore, make_store: Callable[[Clock], SessionStore], clock: FrozenClock
    ) -> AsyncIterator[list[SessionStore]]:
        """The store, and a second object over its records as a second process has (the
        same object for a store whose records live in it)."""
        if not store.persistent:
            yield [store, store]
            return
        other = make_store(clock)
        try:
            yield [store, other]
        finally:
            await other.close()

    async def anonymous(self, store: SessionStore, clock: FrozenClock) -> list[SessionRecord]:
        records = [new_record(clock) for _ in range(LOGINS)]
        for record in records:
            await store.create(record)
        return records

    async def test_concurrent_logins_that_evict_leave_exactly_the_limit(
        self, store: SessionStore, workers: list[SessionStore], clock: FrozenClock
    ) -> None:
        records = await self.anonymous(store, clock)
        limit = SessionLimit(LIMIT, "evict_oldest")

        async def login(worker: SessionStore, record: SessionRecord) -> None:
            async def attach() -> bool:
                logged_in = dataclasses.replace(record, user_id="ada")
                return await worker.update(logged_in, expected_version=record.version)

            await within_limit(worker, "ada", limit, attach, key=record.key)

        async with anyio.create_task_group() as group:
            for n, record in enumerate(records):
                group.start_soon(login, workers[n % 2], record)
        assert len(await store.user_sessions("ada")) == LIMIT

    async def test_concurrent_logins_that_are_refused_leave_exactly_the_limit(
        self, store: SessionStore, workers: list[SessionStore], clock: FrozenClock
    ) -> None:
        records = await self.anonymous(store, clock)
        limit = SessionLimit(LIMIT, "refuse")
        refused: list[str] = []

        async def login(worker: SessionStore, record: SessionRecord) -> None:
            async def attach() -> bool:
                logged_in = dataclasses.replace(record, user_id="ada")
                return await worker.update(logged_in, expected_version=record.version)

            try:
                await within_limit(worker, "ada", limit, attach, key=record.key)
            except SessionLimitReached:
                refused.append(record.key)

        async with anyio.create_task_group() as group:
            for n, record in enumerate(records):
                group.start_soon(login, workers[n % 2], record)
        kept = {record.key for record in await store.user_sessions("ada")}
        assert len(kept) == LIMIT and len(refused) == LOGINS - LIMIT
        for key in refused:
            found = await store.read(key)
            assert found is not None and found.user_id is None, "a refused login writes nothing"

    async def test_a_login_cancelled_between_its_write_and_its_evictions_still_evicts(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        records = await self.anonymous(store, clock)
        held, limit = _HeldDestroy(store), SessionLimit(1, "evict_oldest")
        for record in records[:2]:
            logged_in = dataclasses.replace(record, user_id="ada")
            await store.update(logged_in, expected_version=record.version)
        clock.advance(1)
        last = records[2]

        async def attach() -> bool:
            logged_in = dataclasses.replace(last, user_id="ada")
            return await held.update(logged_in, expected_version=last.version)

        async with anyio.create_task_group() as group:
            group.start_soon(partial(within_limit, held, "ada", limit, attach))
            await held.reached.wait()  # written, evicting: the caller goes away now
            group.cancel_scope.cancel()
            held.release.set()
        # the cancelled caller waited for the evictions before it ended
        assert [r.key for r in await store.user_sessions("ada")] == [last.key]

    async def test_a_users_lock_has_one_holder_at_a_time_and_leaves_other_users_free(
        self, workers: list[SessionStore]
    ) -> None:
        inside: list[int] = []
        overlaps: list[int] = []

        async def hold(worker: SessionStore, n: int) -> None:
            async with worker.user_lock("ada"):
                inside.append(n)
                if len(inside) > 1:
                    overlaps.append(n)
                await anyio.sleep(0.01)
                inside.remove(n)

        async with anyio.create_task_group() as group:
            for n in range(6):
                group.start_soon(hold, workers[n % 2], n)
            async with workers[1].user_lock("bob"):  # another user's lock is free meanwhile
                pass
        assert overlaps == []

    async def test_a_lock_left_by_an_error_is_free_again(
        self, workers: list[SessionStore]
    ) -> None:
        with pytest.raises(RuntimeError):
            async with workers[0].user_lock("ada"):
                raise RuntimeError("the login failed")
        with anyio.fail_after(2):
            async with workers[1].user_lock("ada"):
                pass


class _HeldDestroy(StoreWrapper):
    """A store whose ``destroy`` waits for ``release``: a login held between its write
    and its evictions."""

    def __init__(self, store: SessionStore) -> None:
        super().__init__(store)
        self.reached, self.release = anyio.Event(), anyio.Event()

    async def destroy(self, key: str, *, expected_version: int | None = None) -> bool:
        self.reached.set()
        await self.release.wait()
        return await super().destroy(key, expected_version=expected_version)

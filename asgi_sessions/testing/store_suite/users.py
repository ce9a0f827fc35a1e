"""user_sessions and destroy_user_sessions: a user's records, listed and revoked."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta

from asgi_sessions.stores.base import Clock, SessionStore
from asgi_sessions.testing.clock import FrozenClock
from asgi_sessions.testing.store_suite.fixtures import StoreFixtures
from asgi_sessions.testing.store_suite.support import (
    HOUR,
    new_record,
    sharing_one_namespace,
)

__all__ = ["StoreUserSessions"]


class StoreUserSessions(StoreFixtures):
    """A record's ``user_id`` links it to its user, for listing and revoking."""

    async def test_user_sessions_lists_only_that_users_live_records_oldest_first(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        middle = new_record(clock, user_id="ada", age=20)
        newest = new_record(clock, user_id="ada", age=10)
        oldest = new_record(clock, user_id="ada", age=30)
        expired = new_record(clock, user_id="ada", age=40, lifetime=60)
        others = [new_record(clock, user_id="bob"), new_record(clock, user_id=None)]
        for record in [middle, expired, newest, *others, oldest]:
            await store.create(record)
        clock.advance(60)
        assert await store.user_sessions("ada") == [oldest, middle, newest]

    async def test_user_sessions_of_an_unknown_user_is_empty(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        await store.create(new_record(clock, user_id="ada"))
        assert await store.user_sessions("nobody") == []

    async def test_user_sessions_does_not_match_user_ids_by_prefix_or_case(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        for user_id in ["ada", "Ada", "ada2", "ad"]:
            await store.create(new_record(clock, user_id=user_id))
        [record] = await store.user_sessions("ada")
        assert record.user_id == "ada"

    async def test_an_update_moves_a_record_between_users(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = new_record(clock, user_id="ada")
        await store.create(record)
        to_bob = dataclasses.replace(record, user_id="bob")
        assert await store.update(to_bob, expected_version=1) is True
        assert await store.user_sessions("ada") == []
        assert await store.user_sessions("bob") == [dataclasses.replace(to_bob, version=2)]
        assert await store.destroy_user_sessions("ada") == 0
        assert await store.read(record.key) is not None
        anonymous = dataclasses.replace(record, user_id=None)
        assert await store.update(anonymous, expected_version=2) is True
        assert await store.user_sessions("bob") == []

    async def test_destroy_user_sessions_removes_all_of_that_users_records(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        mine = [new_record(clock, user_id="ada", age=n) for n in range(3)]
        theirs = [new_record(clock, user_id="bob"), new_record(clock, user_id=None)]
        for record in [*mine, *theirs]:
            await store.create(record)
        assert await store.destroy_user_sessions("ada") == 3
        assert await store.user_sessions("ada") == []
        for record in mine:
            assert await store.read(record.key) is None
        for record in theirs:
            assert await store.read(record.key) == record

    async def test_destroy_user_sessions_spares_the_kept_record(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        mine = [new_record(clock, user_id="ada", age=n) for n in range(3)]
        bobs = new_record(clock, user_id="bob")
        for record in [*mine, bobs]:
            await store.create(record)
        assert await store.destroy_user_sessions("ada", keep=mine[1].key) == 2
        assert await store.user_sessions("ada") == [mine[1]]
        assert await store.read(bobs.key) == bobs

    async def test_destroy_user_sessions_keep_names_no_record_of_another_user(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        mine = new_record(clock, user_id="ada")
        bobs = new_record(clock, user_id="bob")
        await store.create(mine)
        await store.create(bobs)
        assert await store.destroy_user_sessions("ada", keep=bobs.key) == 1
        assert await store.read(mine.key) is None
        assert await store.read(bobs.key) == bobs

    async def test_destroy_user_sessions_of_an_unknown_user_returns_zero(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = new_record(clock, user_id="ada")
        await store.create(record)
        assert await store.destroy_user_sessions("nobody") == 0
        assert await store.read(record.key) == record

    async def test_destroy_user_sessions_removes_records_expired_by_the_callers_clock_too(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        start = clock()
        mine = [new_record(clock, user_id="ada", lifetime=300) for _ in range(2)]
        bobs = new_record(clock, user_id="bob", lifetime=300)
        for record in [*mine, bobs]:
            await store.create(record)
        clock.advance(600)  # the caller's clock says they expired; they are still stored
        assert await store.destroy_user_sessions("ada") == 2
        clock.now = start
        for record in mine:
            assert await store.read(record.key) is None
        assert await store.read(bobs.key) == bobs

    async def test_a_revoke_from_a_host_whose_clock_runs_fast_leaves_nothing_live(
        self, make_store: Callable[[Clock], SessionStore], clock: FrozenClock
    ) -> None:
        """An operator's host ten minutes ahead revokes a user: sessions it thinks expired
        are live for the workers, and must go too."""
        fast = FrozenClock(clock() + timedelta(minutes=10))
        async with sharing_one_namespace(make_store, clock, fast) as (worker, operator):
            soon = new_record(clock, user_id="ada", lifetime=300)  # expired by the fast clock
            later = new_record(clock, user_id="ada", lifetime=HOUR)
            bobs = new_record(clock, user_id="bob", lifetime=300)
            for record in (soon, later, bobs):
                await worker.create(record)
            assert await operator.destroy_user_sessions("ada") == 2
            assert await worker.user_sessions("ada") == []
            assert await worker.read(soon.key) is None
            assert await worker.read(later.key) is None
            assert await worker.read(bobs.key) == bobs

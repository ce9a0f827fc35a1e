"""No write brings back a session that has ended, however it ended."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest

from asgi_sessions.stores.base import Clock, SessionRecord, SessionStore, utc_now
from asgi_sessions.testing.clock import FrozenClock
from asgi_sessions.testing.store_suite.fixtures import StoreFixtures
from asgi_sessions.testing.store_suite.support import new_key, new_record

__all__ = ["ENDINGS", "GUARDED", "WRITES", "StoreNoRevival"]

Step = Callable[[SessionStore, FrozenClock, SessionRecord], Awaitable[object]]


async def never_created(store: SessionStore, clock: FrozenClock, record: SessionRecord) -> None:
    """The key never held a record."""


async def destroyed(store: SessionStore, clock: FrozenClock, record: SessionRecord) -> None:
    await store.create(record)
    await store.destroy(record.key)


async def expired(store: SessionStore, clock: FrozenClock, record: SessionRecord) -> None:
    await store.create(record)
    clock.now = record.expires_at


async def revoked(store: SessionStore, clock: FrozenClock, record: SessionRecord) -> None:
    await store.create(record)
    assert record.user_id is not None
    await store.destroy_user_sessions(record.user_id)


ENDINGS: dict[str, Step] = {
    "never-created": never_created,
    "destroyed": destroyed,
    "expired": expired,
    "revoked": revoked,
}
"""The ways a key comes to hold no live record."""


WRITES: dict[str, Step] = {
    "update": lambda store, clock, record: store.update(
        dataclasses.replace(record, data=b"revived", expires_at=clock() + timedelta(hours=1)),
        expected_version=record.version,
    ),
    "extend_lifetime": lambda store, clock, record: store.extend_lifetime(
        record.key, clock() + timedelta(hours=1)
    ),
    "extend_lifetime-versioned": lambda store, clock, record: store.extend_lifetime(
        record.key, clock() + timedelta(hours=1), expected_version=record.version
    ),
}
"""The writes that would bring a record back if they took an ended one."""

GUARDED: dict[str, Step] = {
    **WRITES,
    "destroy-versioned": lambda store, clock, record: store.destroy(
        record.key, expected_version=record.version
    ),
}
"""The writes that act only on a live record, each answering whether it did."""

SLOW_BY = {"60s": timedelta(seconds=60), "10min": timedelta(minutes=10)}


class StoreNoRevival(StoreFixtures):
    """A write never brings back a record that is gone, expired or was never there, nor
    one that has expired by the server's clock while the store's own clock runs slow."""

    @pytest.mark.parametrize("ending", ENDINGS.values(), ids=ENDINGS.keys())
    @pytest.mark.parametrize("write", GUARDED.values(), ids=GUARDED.keys())
    async def test_a_write_to_a_key_with_no_live_record_returns_false_and_revives_nothing(
        self, store: SessionStore, clock: FrozenClock, ending: Step, write: Step
    ) -> None:
        record = new_record(clock, user_id="ada", lifetime=60)
        await ending(store, clock, record)
        assert await write(store, clock, record) is False
        assert await store.read(record.key) is None
        assert await store.count() == 0
        assert await store.user_sessions("ada") == []

    @pytest.mark.parametrize("behind", SLOW_BY.values(), ids=SLOW_BY.keys())
    @pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
    async def test_a_store_whose_clock_runs_slow_cannot_revive_a_record_ended_in_real_time(
        self, make_store: Callable[[Clock], SessionStore], behind: timedelta, write: Step
    ) -> None:
        """The store's clock is behind the real one, so a record that ended 30 seconds ago
        in real time still looks live to it: reads show it, writes must refuse it, as
        judged by the server's clock (this host's, for an embedded store)."""
        slow = FrozenClock(utc_now() - behind)
        store = make_store(slow)
        try:
            record = SessionRecord(
                key=new_key(),
                data=b"ended",
                user_id="ada",
                created_at=slow(),
                expires_at=utc_now() - timedelta(seconds=30),
            )
            await store.create(record)
            assert await store.read(record.key) == record, "live by the store's slow clock"
            assert await write(store, slow, record) is False
            assert await store.read(record.key) == record, "the write changed nothing"
        finally:
            await store.close()

"""read and create: exact round trips, taken keys, and expiry as every reader sees it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest

from asgi_sessions.exceptions import SessionExists
from asgi_sessions.stores.base import Clock, SessionRecord, SessionStore
from asgi_sessions.testing.clock import FrozenClock
from asgi_sessions.testing.store_suite.fixtures import StoreFixtures
from asgi_sessions.testing.store_suite.support import (
    HOUR,
    TINY,
    collect,
    concurrently,
    create_or_exists,
    new_key,
    new_record,
)

__all__ = ["DATA_SAMPLES", "READERS", "StoreReadAndCreate"]

DATA_SAMPLES = {
    "json": b'{"user": "ada", "cart": [1, 2, 3]}',
    "empty": b"",
    "not-utf8": b"\x00\xff\xfe\x80\xc3\x28 zero, invalid utf-8 and \x00 again",
    "64KiB-every-byte": bytes(range(256)) * 256,
}

# Each reader answers "how many of these records can you see?" in its own way, so one
# expiry test covers every method that must hide expired records.
Reader = Callable[[SessionStore, list[SessionRecord]], Awaitable[int]]


async def seen_by_read(store: SessionStore, records: list[SessionRecord]) -> int:
    return sum([await store.read(record.key) is not None for record in records])


async def seen_by_count(store: SessionStore, records: list[SessionRecord]) -> int:
    return await store.count()


async def seen_by_ids(store: SessionStore, records: list[SessionRecord]) -> int:
    return len(await store.ids())


async def seen_by_all(store: SessionStore, records: list[SessionRecord]) -> int:
    return len(await collect(store.all()))


async def seen_by_user_sessions(store: SessionStore, records: list[SessionRecord]) -> int:
    user_ids = {record.user_id for record in records if record.user_id is not None}
    return sum([len(await store.user_sessions(user_id)) for user_id in user_ids])


READERS: dict[str, Reader] = {
    "read": seen_by_read,
    "count": seen_by_count,
    "ids": seen_by_ids,
    "all": seen_by_all,
    "user_sessions": seen_by_user_sessions,
}


class StoreReadAndCreate(StoreFixtures):
    """``read`` returns exactly what ``create`` stored, and never an expired record."""

    async def test_read_of_unknown_key_is_none(self, store: SessionStore) -> None:
        assert await store.read(new_key()) is None

    @pytest.mark.parametrize("data", DATA_SAMPLES.values(), ids=DATA_SAMPLES.keys())
    async def test_create_then_read_returns_an_equal_record(
        self, store: SessionStore, clock: FrozenClock, data: bytes
    ) -> None:
        record = new_record(clock, data=data, user_id="ada", age=12.5)
        await store.create(record)
        assert await store.read(record.key) == record

    @pytest.mark.parametrize("user_id", [None, "42", "ada@example.com", "ünïcode-用户"])
    async def test_create_then_read_keeps_the_user_id(
        self, store: SessionStore, clock: FrozenClock, user_id: str | None
    ) -> None:
        record = new_record(clock, user_id=user_id)
        await store.create(record)
        stored = await store.read(record.key)
        assert stored is not None
        assert stored.user_id == user_id

    async def test_datetimes_round_trip_exactly_as_aware_utc(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = SessionRecord(
            key=new_key(),
            data=b"{}",
            user_id=None,
            created_at=datetime(2029, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
            expires_at=clock() + timedelta(days=400, microseconds=1),
        )
        await store.create(record)
        stored = await store.read(record.key)
        assert stored is not None
        for stored_at, given_at in [
            (stored.created_at, record.created_at),
            (stored.expires_at, record.expires_at),
        ]:
            assert stored_at == given_at
            assert stored_at.microsecond == given_at.microsecond
            assert stored_at.utcoffset() == timedelta(0)

    async def test_create_stores_the_version_it_is_given(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = new_record(clock, version=7)
        await store.create(record)
        assert await store.read(record.key) == record

    async def test_create_on_a_live_key_raises_session_exists_and_keeps_the_original(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        original = new_record(clock, data=b"original", user_id="ada")
        await store.create(original)
        intruder = new_record(clock, key=original.key, data=b"intruder", user_id="eve")
        with pytest.raises(SessionExists):
            await store.create(intruder)
        assert await store.read(original.key) == original
        assert await store.user_sessions("eve") == []

    async def test_create_on_an_expired_key_replaces_the_old_record(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        old = new_record(clock, data=b"old", user_id="ada", lifetime=60, version=5)
        await store.create(old)
        clock.advance(60)
        new = new_record(clock, key=old.key, data=b"new", user_id="bob")
        await store.create(new)
        assert await store.read(old.key) == new
        assert await store.user_sessions("ada") == []
        assert await store.user_sessions("bob") == [new]
        assert await store.count() == 1

    async def test_concurrent_creates_of_one_key_let_exactly_one_win(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        key = new_key()
        candidates = [new_record(clock, key=key, data=b"%d" % n) for n in range(5)]
        won = await concurrently(*[partial(create_or_exists, store, c) for c in candidates])
        assert won.count(True) == 1
        assert await store.read(key) == candidates[won.index(True)]

    async def test_records_with_different_keys_are_independent(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        first, second = new_record(clock, data=b"first"), new_record(clock, data=b"second")
        await store.create(first)
        await store.create(second)
        await store.destroy(first.key)
        assert await store.read(first.key) is None
        assert await store.read(second.key) == second

    @pytest.mark.parametrize("reader", READERS.values(), ids=READERS.keys())
    async def test_a_record_expires_exactly_at_expires_at_without_cleanup(
        self, store: SessionStore, clock: FrozenClock, reader: Reader
    ) -> None:
        short = new_record(clock, user_id="ada", lifetime=60)
        long = new_record(clock, user_id="ada", lifetime=HOUR)
        await store.create(short)
        await store.create(long)
        clock.now = short.expires_at - TINY
        assert await reader(store, [short, long]) == 2
        clock.now = short.expires_at
        assert await reader(store, [short, long]) == 1
        clock.now = long.expires_at
        assert await reader(store, [short, long]) == 0

    async def test_expiry_follows_the_store_clock_not_the_wall_clock(
        self, make_store: Callable[[Clock], SessionStore]
    ) -> None:
        past = FrozenClock(datetime(2001, 2, 3, 4, 5, 6, 789012, tzinfo=UTC))
        store = make_store(past)
        try:
            record = new_record(past, lifetime=60)
            await store.create(record)
            assert await store.read(record.key) == record
            assert await store.count() == 1
            past.advance(60)
            assert await store.read(record.key) is None
        finally:
            await store.close()

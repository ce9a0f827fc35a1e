"""Hostile values: each round-trips exactly or is refused with ValueError at the call,
never reported as an outage of a healthy store, and a refused write leaves nothing."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest

from asgi_sessions.stores.base import MAX_VERSION, SessionStore
from asgi_sessions.testing.clock import FrozenClock
from asgi_sessions.testing.store_suite.fixtures import StoreFixtures
from asgi_sessions.testing.store_suite.support import new_record

__all__ = ["HOSTILE_USER_IDS", "StoreHostileValues"]

HOSTILE_USER_IDS = {
    "nul": "ada\x00eve",
    "lone-surrogate": "ada\ud800",
    "megabyte": "x" * 2**20,
    "hash-tag-and-glob": "{ada}*?[a-z]:",
    "sql-quote": "'; DROP TABLE sessions; --",
    "cr-lf": "ada\r\nSet-Cookie: x=1",
}

FAR_TIMES = {
    "latest": datetime.max.replace(tzinfo=UTC),
    "earliest": datetime.min.replace(tzinfo=UTC),
}


class StoreHostileValues(StoreFixtures):
    """A value a backend cannot hold is a ValueError at the call, not StoreUnavailable: a
    503 from a healthy store would hide the caller's bug behind an outage."""

    @pytest.mark.parametrize("user_id", HOSTILE_USER_IDS.values(), ids=HOSTILE_USER_IDS.keys())
    async def test_a_hostile_user_id_round_trips_exactly_or_is_refused_with_value_error(
        self, store: SessionStore, clock: FrozenClock, user_id: str
    ) -> None:
        record = new_record(clock, user_id=user_id)
        try:
            await store.create(record)
        except ValueError:
            assert await store.clear() == 0, "a refused record leaves nothing behind"
            lookups: list[Callable[[str], Awaitable[object]]] = [
                store.user_sessions,
                store.destroy_user_sessions,
            ]
            for lookup in lookups:  # a user id that cannot be stored owns nothing
                with contextlib.suppress(ValueError):
                    assert not await lookup(user_id)
            return
        assert await store.read(record.key) == record
        assert await store.user_sessions(user_id) == [record]
        changed = dataclasses.replace(record, data=b"changed")
        assert await store.update(changed, expected_version=1) is True
        assert await store.destroy_user_sessions(user_id) == 1
        assert await store.read(record.key) is None

    @pytest.mark.parametrize("user_id", HOSTILE_USER_IDS.values(), ids=HOSTILE_USER_IDS.keys())
    async def test_an_update_to_a_hostile_user_id_applies_exactly_or_changes_nothing(
        self, store: SessionStore, clock: FrozenClock, user_id: str
    ) -> None:
        record = new_record(clock, user_id="ada")
        await store.create(record)
        changed = dataclasses.replace(record, user_id=user_id)
        try:
            updated = await store.update(changed, expected_version=1)
        except ValueError:
            assert await store.read(record.key) == record
            assert await store.user_sessions("ada") == [record]
            return
        assert updated is True
        assert await store.read(record.key) == dataclasses.replace(changed, version=2)
        assert await store.user_sessions("ada") == []

    async def test_the_highest_version_round_trips_and_takes_one_more_update(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = new_record(clock, version=MAX_VERSION)
        await store.create(record)
        assert await store.read(record.key) == record
        changed = dataclasses.replace(record, data=b"last")
        assert await store.update(changed, expected_version=MAX_VERSION) is True
        highest = dataclasses.replace(changed, version=MAX_VERSION + 1)
        assert await store.read(record.key) == highest
        with pytest.raises(ValueError, match="version"):
            await store.update(record, expected_version=MAX_VERSION + 1)
        assert await store.read(record.key) == highest

    @pytest.mark.parametrize("version", [MAX_VERSION + 1, 2**70, -(2**63) - 1])
    async def test_a_version_no_store_can_bump_is_refused_with_value_error(
        self, store: SessionStore, clock: FrozenClock, version: int
    ) -> None:
        with pytest.raises(ValueError, match="version"):
            await store.create(new_record(clock, version=version))
        assert await store.clear() == 0

    @pytest.mark.parametrize("field", ["created_at", "expires_at"])
    async def test_a_time_without_a_time_zone_is_refused_with_value_error(
        self, store: SessionStore, clock: FrozenClock, field: str
    ) -> None:
        record = new_record(clock)
        naive = dataclasses.replace(record, **{field: getattr(record, field).replace(tzinfo=None)})
        with pytest.raises(ValueError, match=field):
            await store.create(naive)
        assert await store.clear() == 0
        await store.create(record)
        with pytest.raises(ValueError, match=field):
            await store.update(naive, expected_version=1)
        assert await store.read(record.key) == record

    @pytest.mark.parametrize("moment", FAR_TIMES.values(), ids=FAR_TIMES.keys())
    async def test_the_farthest_times_round_trip_exactly_or_are_refused_with_value_error(
        self, store: SessionStore, clock: FrozenClock, moment: datetime
    ) -> None:
        record = dataclasses.replace(new_record(clock), created_at=moment)
        try:
            await store.create(record)
        except ValueError:
            assert await store.clear() == 0
            return
        assert await store.read(record.key) == record

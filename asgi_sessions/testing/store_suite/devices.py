"""Device fields: a record's user agent, address and last-seen time, kept beside its data.

They round-trip exactly through every call that returns records, an update replaces
them as it replaces the data, and a slide moves ``last_seen_at`` only when asked to.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from asgi_sessions.stores.base import MAX_DEVICE_TEXT, SessionRecord, SessionStore
from asgi_sessions.testing.clock import FrozenClock
from asgi_sessions.testing.store_suite.fixtures import StoreFixtures
from asgi_sessions.testing.store_suite.support import collect, new_record

__all__ = ["StoreDevices"]

AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0 «ü»"


def tracked(clock: FrozenClock, **fields: object) -> SessionRecord:
    """A record of ada's with every device field set."""
    record = new_record(clock, user_id="ada")
    seen = clock() - timedelta(minutes=3, microseconds=17)
    devices = {"user_agent": AGENT, "ip": "2001:db8:85a3::", "last_seen_at": seen}
    return dataclasses.replace(record, **{**devices, **fields})  # type: ignore[arg-type]


class StoreDevices(StoreFixtures):
    """The device fields of a record, on every path that writes or returns records."""

    async def test_device_fields_round_trip_through_read_listing_and_all(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = tracked(clock)
        await store.create(record)
        assert await store.read(record.key) == record
        assert await store.user_sessions("ada") == [record]
        assert await collect(store.all()) == [record]

    async def test_a_record_without_device_fields_reads_back_without_them(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = new_record(clock, user_id="ada")
        await store.create(record)
        found = await store.read(record.key)
        assert found is not None
        assert (found.user_agent, found.ip, found.last_seen_at) == (None, None, None)

    async def test_an_update_replaces_the_device_fields_with_the_records(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = tracked(clock)
        await store.create(record)
        moved = dataclasses.replace(
            record, data=b"{}", user_agent="curl/8.5.0", ip="192.0.2.0", last_seen_at=clock()
        )
        assert await store.update(moved, expected_version=1) is True
        assert await store.read(record.key) == dataclasses.replace(moved, version=2)
        cleared = dataclasses.replace(moved, user_agent=None, ip=None, last_seen_at=None)
        assert await store.update(cleared, expected_version=2) is True
        assert await store.read(record.key) == dataclasses.replace(cleared, version=3)

    async def test_a_slide_moves_last_seen_only_when_given(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = tracked(clock)
        await store.create(record)
        later = clock() + timedelta(hours=2)
        assert await store.extend_lifetime(record.key, later, expected_version=1) is True
        assert await store.read(record.key) == dataclasses.replace(record, expires_at=later)
        seen = clock.advance(60)
        assert await store.extend_lifetime(record.key, later, seen_at=seen) is True
        expected = dataclasses.replace(record, expires_at=later, last_seen_at=seen)
        assert await store.read(record.key) == expected

    @pytest.mark.parametrize(
        "fields",
        [
            {"user_agent": "a" * (MAX_DEVICE_TEXT + 1)},
            {"user_agent": "bad\x00agent"},
            {"ip": "10.0.0.1\n"},
        ],
        ids=["long", "nul", "newline"],
    )
    async def test_device_text_a_store_may_not_keep_is_a_value_error_and_writes_nothing(
        self, store: SessionStore, clock: FrozenClock, fields: dict[str, str]
    ) -> None:
        record = tracked(clock, **fields)
        with pytest.raises(ValueError, match="at most"):
            await store.create(record)
        assert await store.read(record.key) is None

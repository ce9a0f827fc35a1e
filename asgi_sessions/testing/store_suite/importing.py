"""import_records: a migration's copies, taken only where they are not older than what
the store holds, with everything of each record kept."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from asgi_sessions.stores.base import SessionStore
from asgi_sessions.testing.clock import FrozenClock
from asgi_sessions.testing.store_suite.fixtures import StoreFixtures
from asgi_sessions.testing.store_suite.support import collect, new_record

__all__ = ["StoreImport"]


class StoreImport(StoreFixtures):
    """``import_records`` copies, replaces older versions, skips the rest, and says so."""

    async def test_import_copies_records_exactly_and_counts_each_outcome(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        seen = clock() - timedelta(minutes=1)
        fresh = [
            dataclasses.replace(
                new_record(clock, user_id="ada", version=7),
                user_agent="Phone/1",
                ip="192.0.2.0",
                last_seen_at=seen,
            ),
            new_record(clock, version=3),
        ]
        older, newer = new_record(clock, version=2), new_record(clock, version=9)
        expired = new_record(clock, lifetime=60, version=9)
        for record in (older, newer, expired):
            await store.create(record)
        clock.advance(61)  # expired is dead but may still be held
        incoming = [
            *fresh,
            dataclasses.replace(older, data=b'{"n": 5}', version=5),  # replaces v2
            dataclasses.replace(newer, data=b'{"n": 4}', version=4),  # older than v9
            dataclasses.replace(expired, version=1, expires_at=clock() + timedelta(hours=1)),
        ]
        counts = await store.import_records(incoming)  # the last takes a dead record's key
        assert dict(counts) == {"copied": 3, "replaced": 1, "skipped": 1}
        for record in (*fresh, incoming[2], newer, incoming[4]):
            assert await store.read(record.key) == record
        assert await store.user_sessions("ada") == [fresh[0]]

    async def test_import_is_safe_to_run_again(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        records = [new_record(clock, user_id=f"u{n % 3}") for n in range(250)]
        assert (await store.import_records(records))["copied"] == 250
        assert dict(await store.import_records(records)) == {"skipped": 250}
        assert len(await collect(store.all())) == 250

    async def test_importing_nothing_is_nothing(self, store: SessionStore) -> None:
        assert sum((await store.import_records([])).values()) == 0

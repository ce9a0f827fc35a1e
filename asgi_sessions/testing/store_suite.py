"""The store conformance suite: every sentence of the store contract, as tests.

Subclass ``StoreConformance`` in a test module and override its ``make_store``
fixture; pytest then runs every test below against your store::

    class TestMyStore(StoreConformance):
        @pytest.fixture
        def make_store(self, tmp_path: Path) -> Callable[[Clock], SessionStore]:
            return lambda clock: MyStore(tmp_path / "sessions.db", clock=clock)

Optionally override ``make_unavailable_store`` with a factory of stores aimed at a
server that is down (a closed port, or ``unresponsive_address`` with short timeouts)
to check that every call raises StoreUnavailable.

The suite asks only the public contract of ``asgi_sessions.stores.base``. Time moves
through a ``FrozenClock``, never by sleeping. A behaviour a store may lack is a
capability it declares (``persistent``); tests that need it skip and say why. Tests
run on asyncio through anyio's pytest plugin; override ``anyio_backend`` to change it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TypeVar

import anyio
import anyio.lowlevel
import pytest

from asgi_sessions.exceptions import SessionExists, StoreUnavailable
from asgi_sessions.stores.base import Clock, SessionRecord, SessionStore
from asgi_sessions.testing.clock import FrozenClock

__all__ = ["StoreConformance"]

T = TypeVar("T")

START = datetime(2030, 1, 1, 8, 30, 15, 123457, tzinfo=UTC)
"""The suite's clock starts here: after today, with microseconds, to catch rounding."""

HOUR = 3600.0
TINY = timedelta(microseconds=1)


def new_key() -> str:
    """A key as the middleware makes it: the SHA-256 hex digest of a random token."""
    return hashlib.sha256(os.urandom(32)).hexdigest()


def new_record(
    clock: Clock,
    *,
    key: str | None = None,
    data: bytes = b'{"cart": [1, 2, 3]}',
    user_id: str | None = None,
    lifetime: float = HOUR,
    age: float = 0.0,
    version: int = 1,
) -> SessionRecord:
    """A record created ``age`` seconds ago that expires ``lifetime`` seconds from now."""
    now = clock()
    return SessionRecord(
        key=key or new_key(),
        data=data,
        user_id=user_id,
        created_at=now - timedelta(seconds=age),
        expires_at=now + timedelta(seconds=lifetime),
        version=version,
    )


async def concurrently(*calls: Callable[[], Awaitable[T]]) -> list[T]:
    """Run every call at once in one task group; return their results in order."""
    results: dict[int, T] = {}

    async def run(index: int, call: Callable[[], Awaitable[T]]) -> None:
        results[index] = await call()

    async with anyio.create_task_group() as group:
        for index, call in enumerate(calls):
            group.start_soon(run, index, call)
    return [results[index] for index in range(len(calls))]


async def create_or_exists(store: SessionStore, record: SessionRecord) -> bool:
    """Create ``record``; True if this call made it, False if SessionExists was raised."""
    try:
        await store.create(record)
    except SessionExists:
        return False
    return True


async def collect(records: AsyncIterator[SessionRecord]) -> list[SessionRecord]:
    """Drain an ``all()`` iterator into a list."""
    return [record async for record in records]


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

NOT_PERSISTENT = "store does not keep records across instances"

DATA_SAMPLES = {
    "json": b'{"user": "ada", "cart": [1, 2, 3]}',
    "empty": b"",
    "not-utf8": b"\x00\xff\xfe\x80\xc3\x28 zero, invalid utf-8 and \x00 again",
    "64KiB-every-byte": bytes(range(256)) * 256,
}


@pytest.mark.anyio
class StoreConformance:
    """Subclass in a test module and override ``make_store``; every test here then runs on it."""

    # -- fixtures a store author overrides or uses ---------------------------------

    @pytest.fixture
    def make_store(self) -> Callable[[Clock], SessionStore]:
        """Return a factory: each call builds a NEW store over the SAME namespace, with that clock.

        Override it in your subclass. It may take other fixtures, be async, and yield
        so it can clean the namespace (file, table, key prefix) up afterwards.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must override the make_store fixture: return a function "
            "that takes a clock and builds a new store object over this test's own "
            "namespace (file, table or key prefix), e.g. "
            "lambda clock: MyStore(path, clock=clock)"
        )

    @pytest.fixture
    def make_unavailable_store(self) -> Callable[[Clock], SessionStore] | None:
        """Optionally return a factory of stores whose server cannot be reached.

        Point it at a closed port, or at ``unresponsive_address`` with short timeouts;
        the suite then checks that every call raises StoreUnavailable. None skips that.
        """
        return None

    @pytest.fixture
    def unresponsive_address(self) -> Iterator[tuple[str, int]]:
        """A loopback (host, port) that accepts connections and never answers a byte."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(64)  # the kernel completes handshakes; nobody ever reads
            yield "127.0.0.1", listener.getsockname()[1]

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    def clock(self) -> FrozenClock:
        return FrozenClock(START)

    @pytest.fixture
    async def store(
        self, make_store: Callable[[Clock], SessionStore], clock: FrozenClock
    ) -> AsyncIterator[SessionStore]:
        """The store under test, closed afterwards."""
        store = make_store(clock)
        try:
            yield store
        finally:
            await store.close()

    # -- read and create ----------------------------------------------------------

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

    # -- expiry -------------------------------------------------------------------

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

    # -- update -------------------------------------------------------------------

    async def test_update_with_the_current_version_replaces_fields_and_bumps_the_version(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        original = new_record(clock, data=b"before", user_id="ada", age=30)
        await store.create(original)
        clock.advance(5)
        changed = dataclasses.replace(
            original,
            data=b"after",
            user_id="bob",
            created_at=clock(),  # ignored: created_at never changes
            expires_at=clock() + timedelta(hours=2, microseconds=3),
        )
        assert await store.update(changed, expected_version=1) is True
        assert await store.read(original.key) == dataclasses.replace(
            changed, created_at=original.created_at, version=2
        )

    async def test_successive_updates_bump_the_version_by_one_each(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = new_record(clock, version=3)
        await store.create(record)
        for version in range(3, 8):
            changed = dataclasses.replace(record, data=b"v%d" % version)
            assert await store.update(changed, expected_version=version) is True
            stored = await store.read(record.key)
            assert stored is not None
            assert (stored.version, stored.data) == (version + 1, b"v%d" % version)

    @pytest.mark.parametrize("expected_version", [0, 2, 5])
    async def test_update_with_another_version_returns_false_and_changes_nothing(
        self, store: SessionStore, clock: FrozenClock, expected_version: int
    ) -> None:
        original = new_record(clock, version=1, user_id="ada")
        await store.create(original)
        changed = dataclasses.replace(original, data=b"lost", user_id="bob")
        assert await store.update(changed, expected_version=expected_version) is False
        assert await store.read(original.key) == original
        assert await store.user_sessions("bob") == []

    async def test_update_of_a_stale_version_after_another_update_returns_false(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        original = new_record(clock)
        await store.create(original)
        first = dataclasses.replace(original, data=b"first")
        late = dataclasses.replace(original, data=b"late")
        assert await store.update(first, expected_version=1) is True
        assert await store.update(late, expected_version=1) is False
        assert await store.read(original.key) == dataclasses.replace(first, version=2)

    async def test_update_of_a_never_created_key_returns_false_and_creates_nothing(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = new_record(clock, user_id="ada")
        assert await store.update(record, expected_version=1) is False
        assert await store.read(record.key) is None
        assert await store.count() == 0
        assert await store.user_sessions("ada") == []

    async def test_update_of_a_destroyed_key_returns_false_and_does_not_recreate_it(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = new_record(clock, user_id="ada")
        await store.create(record)
        await store.destroy(record.key)
        assert await store.update(record, expected_version=1) is False
        assert await store.read(record.key) is None
        assert await store.user_sessions("ada") == []

    async def test_update_of_an_expired_key_returns_false_and_does_not_revive_it(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = new_record(clock, lifetime=60)
        await store.create(record)
        clock.advance(60)
        revived = dataclasses.replace(record, expires_at=clock() + timedelta(hours=1))
        assert await store.update(revived, expected_version=1) is False
        assert await store.read(record.key) is None
        assert await store.count() == 0

    async def test_concurrent_updates_with_the_same_version_let_exactly_one_win(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        original = new_record(clock)
        await store.create(original)
        rivals = [dataclasses.replace(original, data=b"rival %d" % n) for n in range(5)]
        won = await concurrently(
            *[partial(store.update, rival, expected_version=1) for rival in rivals]
        )
        assert won.count(True) == 1
        winner = rivals[won.index(True)]
        assert await store.read(original.key) == dataclasses.replace(winner, version=2)

    async def test_update_can_shorten_the_lifetime(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = new_record(clock, lifetime=HOUR)
        await store.create(record)
        shorter = dataclasses.replace(record, expires_at=clock() + timedelta(seconds=10))
        assert await store.update(shorter, expected_version=1) is True
        clock.advance(10)
        assert await store.read(record.key) is None

    # -- destroy ------------------------------------------------------------------

    async def test_destroy_removes_the_record_everywhere(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = new_record(clock, user_id="ada")
        await store.create(record)
        await store.destroy(record.key)
        assert await store.read(record.key) is None
        assert await store.count() == 0
        assert await store.ids() == []
        assert await collect(store.all()) == []
        assert await store.user_sessions("ada") == []

    async def test_destroy_is_idempotent(self, store: SessionStore, clock: FrozenClock) -> None:
        record = new_record(clock)
        await store.create(record)
        await store.destroy(record.key)
        await store.destroy(record.key)
        assert await store.read(record.key) is None

    async def test_destroy_of_an_unknown_key_is_not_an_error(self, store: SessionStore) -> None:
        await store.destroy(new_key())
        assert await store.count() == 0

    async def test_a_destroyed_key_can_be_created_again(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = new_record(clock, data=b"first life")
        await store.create(record)
        await store.destroy(record.key)
        again = dataclasses.replace(record, data=b"second life")
        await store.create(again)
        assert await store.read(record.key) == again

    # -- extend_lifetime ----------------------------------------------------------

    async def test_extend_lifetime_moves_only_the_expiry(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = new_record(clock, user_id="ada", lifetime=60, version=4)
        await store.create(record)
        later = clock() + timedelta(hours=3, microseconds=7)
        await store.extend_lifetime(record.key, later)
        clock.advance(HOUR)  # well past the old expiry
        assert await store.read(record.key) == dataclasses.replace(record, expires_at=later)
        assert await store.user_sessions("ada") == [dataclasses.replace(record, expires_at=later)]

    async def test_extend_lifetime_keeps_the_version_so_a_loaded_update_still_succeeds(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = new_record(clock)
        await store.create(record)
        await store.extend_lifetime(record.key, clock() + timedelta(hours=2))
        changed = dataclasses.replace(record, data=b"changed")
        assert await store.update(changed, expected_version=1) is True

    async def test_extend_lifetime_can_shorten_the_lifetime(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = new_record(clock, lifetime=HOUR)
        await store.create(record)
        await store.extend_lifetime(record.key, clock() + timedelta(seconds=10))
        clock.advance(10)
        assert await store.read(record.key) is None

    async def test_extend_lifetime_of_an_unknown_key_creates_nothing(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        key = new_key()
        await store.extend_lifetime(key, clock() + timedelta(hours=1))
        assert await store.read(key) is None
        assert await store.count() == 0

    async def test_extend_lifetime_of_an_expired_key_does_not_revive_it(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = new_record(clock, lifetime=60)
        await store.create(record)
        clock.advance(60)
        await store.extend_lifetime(record.key, clock() + timedelta(hours=1))
        assert await store.read(record.key) is None
        assert await store.count() == 0

    async def test_extend_lifetime_of_a_destroyed_key_does_not_revive_it(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = new_record(clock)
        await store.create(record)
        await store.destroy(record.key)
        await store.extend_lifetime(record.key, clock() + timedelta(hours=1))
        assert await store.read(record.key) is None

    # -- cleanup_expired_sessions -------------------------------------------------

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

    async def test_cleanup_with_nothing_expired_removes_nothing(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = new_record(clock)
        await store.create(record)
        assert await store.cleanup_expired_sessions(batch_size=1) == 0
        assert await store.read(record.key) == record

    # -- clear --------------------------------------------------------------------

    async def test_clear_removes_live_and_expired_records_and_returns_their_number(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        await store.create(new_record(clock, lifetime=60, user_id="ada"))
        await store.create(new_record(clock, lifetime=HOUR, user_id="ada"))
        await store.create(new_record(clock, lifetime=HOUR))
        clock.advance(60)
        assert await store.clear() == 3
        assert await store.count() == 0
        assert await store.user_sessions("ada") == []
        assert await store.cleanup_expired_sessions() == 0

    async def test_clear_of_an_empty_store_returns_zero(self, store: SessionStore) -> None:
        assert await store.clear() == 0

    async def test_a_cleared_store_accepts_new_records(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        old = new_record(clock)
        await store.create(old)
        await store.clear()
        await store.create(old)
        assert await store.read(old.key) == old

    # -- count, ids, all ----------------------------------------------------------

    async def test_an_empty_store_has_no_records(self, store: SessionStore) -> None:
        assert await store.count() == 0
        assert await store.ids() == []
        assert await collect(store.all()) == []

    async def test_count_ids_and_all_agree_and_leave_out_expired_records(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        live = [new_record(clock, user_id=f"user-{n}", age=n) for n in range(4)]
        expired = [new_record(clock, lifetime=60) for _ in range(3)]
        for record in [*live, *expired]:
            await store.create(record)
        clock.advance(60)
        records = await collect(store.all())
        assert await store.count() == len(live)
        assert sorted(await store.ids()) == sorted(record.key for record in live)
        assert sorted(records, key=lambda r: r.key) == sorted(live, key=lambda r: r.key)

    async def test_all_yields_full_records_with_their_current_version(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = new_record(clock, data=DATA_SAMPLES["not-utf8"], user_id="ada")
        await store.create(record)
        changed = dataclasses.replace(record, data=b"changed")
        await store.update(changed, expected_version=1)
        assert await collect(store.all()) == [dataclasses.replace(changed, version=2)]

    async def test_an_abandoned_iteration_leaves_the_store_usable(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        await self.create_many(store, clock, 30)
        async for _ in store.all():
            break
        record = new_record(clock)
        await store.create(record)
        assert await store.read(record.key) == record
        assert await store.count() == 31

    async def test_many_records_are_all_counted_listed_and_iterated(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        records = await self.create_many(store, clock, 2500)
        keys = sorted(record.key for record in records)
        assert await store.count() == 2500
        assert sorted(await store.ids()) == keys
        seen = [record.key async for record in store.all()]
        assert len(seen) == 2500, "all() yielded some records twice or left some out"
        assert sorted(seen) == keys

    # -- user_sessions and destroy_user_sessions -----------------------------------

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

    # -- close, reopen, event loops, cancellation -----------------------------------

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
        if not first.persistent:
            pytest.skip(NOT_PERSISTENT)
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
        first, second = make_store(clock), make_store(clock)
        if not first.persistent:
            pytest.skip(NOT_PERSISTENT)
        async with first, second:
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
        first, second = make_store(clock), make_store(clock)
        if not first.persistent:
            pytest.skip(NOT_PERSISTENT)
        async with first, second:
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
        now_store, later_store = make_store(clock), make_store(later)
        if not now_store.persistent:
            pytest.skip(NOT_PERSISTENT)
        async with now_store, later_store:
            record = new_record(clock, lifetime=HOUR)
            await now_store.create(record)
            assert await now_store.read(record.key) == record
            assert await later_store.read(record.key) is None
            assert await later_store.count() == 0

    async def test_the_store_keeps_working_from_other_event_loops(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = new_record(clock)
        await store.create(record)

        def in_a_new_loop() -> SessionRecord | None:
            return asyncio.run(store.read(record.key))

        # Starlette's TestClient runs each request in a new loop, then closes it.
        assert await anyio.to_thread.run_sync(in_a_new_loop) == record
        assert await anyio.to_thread.run_sync(in_a_new_loop) == record
        assert await store.read(record.key) == record
        changed = dataclasses.replace(record, data=b"changed")
        assert await store.update(changed, expected_version=1) is True

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

    async def test_a_cancelled_call_ends_cancelled(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        """A call cancelled before it finished raises CancelledError: a driver that drops
        the cancellation would keep a stopping task (a sweeper at shutdown) running."""
        record = new_record(clock)
        await store.create(record)
        calls: list[Callable[[], Awaitable[object]]] = [
            partial(store.read, record.key),
            partial(store.extend_lifetime, record.key, record.expires_at),
            store.count,
            store.cleanup_expired_sessions,
        ]
        finished_anyway = []
        for step in range(30):
            for call in calls:
                task = asyncio.ensure_future(call())
                for _ in range(step):
                    await asyncio.sleep(0)
                if not task.cancel():
                    continue  # it had finished: there was nothing to cancel
                try:
                    await task
                except asyncio.CancelledError:
                    continue
                finished_anyway.append((getattr(call, "func", call).__name__, step))
        assert finished_anyway == [], "cancelled calls returned normally"
        assert await store.read(record.key) == record

    # -- an unreachable server -----------------------------------------------------

    async def test_an_unreachable_server_raises_store_unavailable_from_every_call(
        self, make_unavailable_store: Callable[[Clock], SessionStore] | None, clock: FrozenClock
    ) -> None:
        if make_unavailable_store is None:
            pytest.skip("make_unavailable_store is not overridden: no unreachable server given")
        store = make_unavailable_store(clock)  # builds without I/O, so this must not raise
        record = new_record(clock, user_id="ada")
        calls: dict[str, Callable[[], Awaitable[object]]] = {
            "read": partial(store.read, record.key),
            "create": partial(store.create, record),
            "update": partial(store.update, record, expected_version=1),
            "destroy": partial(store.destroy, record.key),
            "extend_lifetime": partial(store.extend_lifetime, record.key, record.expires_at),
            "cleanup_expired_sessions": store.cleanup_expired_sessions,
            "clear": store.clear,
            "count": store.count,
            "ids": store.ids,
            "all": partial(collect, store.all()),
            "user_sessions": partial(store.user_sessions, "ada"),
            "destroy_user_sessions": partial(store.destroy_user_sessions, "ada"),
        }
        wrong: dict[str, str] = {}
        try:
            for name, call in calls.items():
                try:
                    await call()
                except StoreUnavailable as exc:
                    if not str(exc):
                        wrong[name] = "StoreUnavailable should say what happened and what to do"
                except Exception as exc:
                    wrong[name] = f"raised {type(exc).__module__}.{type(exc).__qualname__}: {exc}"
                else:
                    wrong[name] = "returned instead of raising StoreUnavailable"
        finally:
            await store.close()
        assert not wrong, wrong

    # -- shared setup ---------------------------------------------------------------

    @staticmethod
    async def create_many(
        store: SessionStore, clock: FrozenClock, number: int, *, lifetime: float = HOUR
    ) -> list[SessionRecord]:
        """Create ``number`` records, a hundred at a time concurrently."""
        records = [new_record(clock, lifetime=lifetime, age=n / 1000) for n in range(number)]
        for start in range(0, number, 100):
            chunk = records[start : start + 100]
            await concurrently(*[partial(store.create, record) for record in chunk])
        return records

"""TieredStore's own promises, with faults injected on a real Redis cache in front of a
real SQLite primary: reads at the cache, and no ended session served again."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from asgi_sessions.exceptions import StoreUnavailable
from asgi_sessions.stores.base import SessionRecord, SessionStore
from asgi_sessions.stores.redis import RedisStore
from asgi_sessions.stores.sqlite import SQLiteStore
from asgi_sessions.stores.tiered import TieredStore
from asgi_sessions.testing.app import build_app
from asgi_sessions.testing.clock import FrozenClock
from asgi_sessions.testing.recording import RecordingStore
from asgi_sessions.testing.store_suite import new_record

pytestmark = pytest.mark.anyio


class HeldReads(RecordingStore):
    """A real store whose reads pause, once they have their answer, until released: a
    worker that read the primary and has not yet filled the cache."""

    def __init__(self, store: SessionStore) -> None:
        super().__init__(store)
        self.answered = asyncio.Event()
        self.release = asyncio.Event()

    async def read(self, key: str) -> SessionRecord | None:
        record = await super().read(key)
        self.answered.set()
        await self.release.wait()
        return record


async def end(store: SessionStore, record: SessionRecord, ending: str) -> bool:
    """End ``record``'s session by ``destroy`` or by revoking its user; True if it was."""
    if ending == "destroy":
        return await store.destroy(record.key)
    assert record.user_id is not None
    return await store.destroy_user_sessions(record.user_id) == 1


class Worker:
    """One worker's view: a tiered store over the shared SQLite file and Redis prefix,
    with its cache and primary each wrapped so faults can be injected."""

    def __init__(self, path: Path, redis_url: str, prefix: str, clock: FrozenClock) -> None:
        self.primary = RecordingStore(SQLiteStore(path, clock=clock))
        self.cache = RecordingStore(RedisStore(redis_url, prefix=prefix, clock=clock))
        self.store = TieredStore(self.primary, self.cache, clock=clock)


@pytest.fixture
async def workers(
    tmp_path: Path, redis_url: str, namespace: str, clock: FrozenClock
) -> AsyncIterator[tuple[Worker, Worker]]:
    path = tmp_path / "sessions.db"
    pair = (
        Worker(path, redis_url, f"{namespace}:", clock),
        Worker(path, redis_url, f"{namespace}:", clock),
    )
    yield pair
    for worker in pair:
        worker.cache.heal()
        worker.primary.heal()
        await worker.store.clear()
        await worker.store.close()


async def test_a_read_of_a_cached_session_asks_only_the_cache(
    workers: tuple[Worker, Worker], clock: FrozenClock
) -> None:
    one, _ = workers
    record = new_record(clock)
    await one.store.create(record)
    one.primary.reset()
    one.primary.fail()
    assert await one.store.read(record.key) == record
    assert one.primary.calls == []


async def test_a_miss_reads_the_primary_once_and_fills_the_cache(
    workers: tuple[Worker, Worker], clock: FrozenClock
) -> None:
    one, _ = workers
    record = new_record(clock)
    await one.primary.store.create(record)  # written before the cache existed
    assert await one.store.read(record.key) == record
    assert await one.store.read(record.key) == record
    assert one.primary.calls == ["read"]
    assert await one.cache.store.read(record.key) == record


async def test_an_unreachable_cache_sends_reads_to_the_primary(
    workers: tuple[Worker, Worker], clock: FrozenClock
) -> None:
    one, _ = workers
    record = new_record(clock)
    await one.store.create(record)
    one.cache.fail()
    assert await one.store.read(record.key) == record


@pytest.mark.parametrize("ending", ["destroy", "revoke"])
async def test_an_end_that_cannot_reach_the_cache_fails_and_changes_nothing(
    workers: tuple[Worker, Worker], clock: FrozenClock, ending: str
) -> None:
    one, two = workers
    record = new_record(clock, user_id="ada")
    await one.store.create(record)
    one.cache.fail()
    with pytest.raises(StoreUnavailable):
        await end(one.store, record, ending)
    one.cache.heal()
    assert await two.store.read(record.key) == record  # the session plainly lives on
    assert await one.primary.store.read(record.key) == record


@pytest.mark.parametrize("ending", ["destroy", "revoke"])
async def test_once_an_end_returns_no_worker_reads_the_session_again(
    workers: tuple[Worker, Worker], clock: FrozenClock, ending: str
) -> None:
    one, two = workers
    record = new_record(clock, user_id="ada")
    await one.store.create(record)
    assert await two.store.read(record.key) == record  # cached for both
    assert await end(one.store, record, ending) is True
    assert await one.store.read(record.key) is None
    assert await two.store.read(record.key) is None
    assert await two.store.update(record, expected_version=1) is False


@pytest.mark.parametrize("ending", ["destroy", "revoke"])
async def test_a_worker_that_read_the_primary_before_an_end_cannot_fill_it_back(
    tmp_path: Path, redis_url: str, namespace: str, clock: FrozenClock, ending: str
) -> None:
    path = tmp_path / "sessions.db"
    ender = Worker(path, redis_url, f"{namespace}:", clock)
    held = HeldReads(SQLiteStore(path, clock=clock))
    cache = RedisStore(redis_url, prefix=f"{namespace}:", clock=clock)
    reader = TieredStore(held, cache, clock=clock)
    record = new_record(clock, user_id="ada")
    await held.store.create(record)  # in the primary only: the reader will miss the cache
    try:
        reading = asyncio.ensure_future(reader.read(record.key))
        await held.answered.wait()  # it has the record from the primary, not yet cached
        assert await end(ender.store, record, ending) is True
        held.release.set()
        await reading  # its answer predates the end; its fill must not outlive it
        assert await ender.store.read(record.key) is None
        assert await reader.read(record.key) is None
    finally:
        await ender.store.clear()
        await ender.store.close()
        await reader.close()


async def test_a_login_while_the_cache_is_down_is_still_revoked_everywhere(
    workers: tuple[Worker, Worker], clock: FrozenClock
) -> None:
    one, two = workers
    one.cache.fail()
    record = new_record(clock, user_id="ada")
    await one.store.create(record)
    one.cache.heal()
    assert await two.store.read(record.key) == record  # filled from the primary
    assert await one.store.destroy_user_sessions("ada") == 1
    assert await two.store.read(record.key) is None


async def test_revoke_keeps_the_session_asked_for_in_both_tiers(
    workers: tuple[Worker, Worker], clock: FrozenClock
) -> None:
    one, two = workers
    kept, other = new_record(clock, user_id="ada"), new_record(clock, user_id="ada")
    await one.store.create(kept)
    await one.store.create(other)
    assert await one.store.destroy_user_sessions("ada", keep=kept.key) == 1
    assert await two.store.read(kept.key) == kept
    assert await two.store.read(other.key) is None


async def test_a_write_the_cache_missed_is_healed_by_the_next_writer(
    workers: tuple[Worker, Worker], clock: FrozenClock
) -> None:
    """The cost of write-through: an update that reached the primary but not the cache
    leaves a stale copy; the next compare-and-set against it fails and drops the copy,
    so the writer's reload reads the primary."""
    one, _ = workers
    record = new_record(clock)
    await one.store.create(record)
    changed = dataclasses.replace(record, data=b"changed")
    one.cache.fail("update", "read", "destroy")
    assert await one.store.update(changed, expected_version=1) is True
    one.cache.heal()
    assert await one.store.read(record.key) == record  # stale, version 1
    assert await one.store.update(record, expected_version=1) is False
    assert await one.store.read(record.key) == dataclasses.replace(changed, version=2)


async def test_a_versioned_destroy_that_loses_leaves_the_session_readable(
    workers: tuple[Worker, Worker], clock: FrozenClock
) -> None:
    one, two = workers
    record = new_record(clock)
    await one.store.create(record)
    changed = dataclasses.replace(record, data=b"changed")
    assert await two.store.update(changed, expected_version=1) is True
    assert await one.store.destroy(record.key, expected_version=1) is False
    assert await two.store.read(record.key) == dataclasses.replace(changed, version=2)


async def test_a_logout_while_the_cache_is_down_answers_503_then_holds_on_every_worker(
    workers: tuple[Worker, Worker],
) -> None:
    one, two = workers
    apps = [build_app(worker.store) for worker in workers]
    base = "http://testserver"
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(apps[0]), base_url=base) as first,
        httpx.AsyncClient(transport=httpx.ASGITransport(apps[1]), base_url=base) as second,
    ):
        assert (await first.post("/login/ada")).status_code == 200
        second.cookies = first.cookies
        assert (await second.get("/read")).json()["user_id"] == "ada"
        one.cache.fail()
        assert (await first.post("/logout")).status_code == 503
        assert (await second.get("/read")).json()["user_id"] == "ada"  # nothing half-done
        one.cache.heal()
        assert (await first.post("/logout")).status_code == 200
        assert (await second.get("/read")).json()["user_id"] is None
        assert await two.store.count() == 0

"""A cluster slot half-migrated between two primaries: revoke and cleanup still succeed.

With a hash-tagged prefix (``{app}:``) every key of a store sits in one slot. While that
slot moves (``CLUSTER SETSLOT ... MIGRATING/IMPORTING``, then ``MIGRATE`` a key at a time,
as ``redis-cli --cluster reshard`` does), some of its keys are on the old primary and the
rest on the new one. A script over several of them then gets TRYAGAIN or ASK: Redis runs
a multi-key command only where all its keys are. Revoke (``destroy_user_sessions``) and
cleanup run such a script; they must still remove exactly what they should, whatever
stage the move is at.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial

import anyio.to_thread
import pytest
from redis.crc import key_slot
from redis_cluster import Cluster, Node

from asgi_sessions.stores.base import SessionRecord
from asgi_sessions.stores.redis import RedisStore
from asgi_sessions.testing.clock import FrozenClock
from asgi_sessions.testing.store_suite import concurrently, new_record

pytestmark = pytest.mark.anyio
pytest_plugins = ["redis_cluster"]

DAY = 24 * 3600.0


@dataclass
class Move:
    """A slot on its way from ``source`` to ``target``."""

    cluster: Cluster
    slot: int
    source: Node
    target: Node

    async def begin(self) -> None:
        await anyio.to_thread.run_sync(
            self.cluster.start_migration, self.slot, self.source, self.target
        )

    async def move_some(self, share: int) -> list[str]:
        """Move every ``share``-th key of the slot (sorted by name), none if ``share`` is
        0; return those moved. The slot stays MIGRATING/IMPORTING either way."""

        def move() -> list[str]:
            keys = sorted(
                self.source.cli("CLUSTER", "GETKEYSINSLOT", str(self.slot), "1000").split()
            )
            moved = keys[::share] if share else []
            if moved:
                self.cluster.migrate(self.source, self.target, moved)
            return moved

        return await anyio.to_thread.run_sync(move)

    async def finish(self) -> None:
        await anyio.to_thread.run_sync(
            self.cluster.finish_migration, self.slot, self.source, self.target
        )


@pytest.fixture
async def store(
    redis_cluster: Cluster, namespace: str, clock: FrozenClock
) -> AsyncIterator[RedisStore]:
    """A store whose every key is in one slot, by a hash-tagged prefix."""
    opened = RedisStore(redis_cluster.url, prefix=f"{{{namespace}}}:", clock=clock)
    try:
        yield opened
    finally:
        await opened.clear()
        await opened.close()


@pytest.fixture
async def move(redis_cluster: Cluster, namespace: str) -> AsyncIterator[Move]:
    """The move of this test's slot to another primary; finished afterwards, so the
    shared cluster serves every slot normally again."""
    slot = key_slot(f"{{{namespace}}}".encode())
    source = redis_cluster.owner_of_slot(slot)
    target = next(node for node in redis_cluster.primaries() if node is not source)
    started = Move(redis_cluster, slot, source, target)
    try:
        yield started
    finally:
        await started.finish()


async def create_all(store: RedisStore, *groups: list[SessionRecord]) -> None:
    for group in groups:
        for record in group:
            await store.create(record)


async def still_there(store: RedisStore, records: list[SessionRecord]) -> list[bool]:
    return [await store.read(record.key) == record for record in records]


async def sessions_of(store: RedisStore, user_id: str) -> list[SessionRecord]:
    """The user's sessions in key order (created together, their time order is a tie)."""
    return sorted(await store.user_sessions(user_id), key=lambda record: record.key)


def by_key(records: list[SessionRecord]) -> list[SessionRecord]:
    return sorted(records, key=lambda record: record.key)


SHARES = pytest.mark.parametrize(
    "share",
    [0, 2, 3, 1],
    ids=["none-moved-yet", "every-second-key-moved", "every-third-key-moved", "all-moved"],
)


@SHARES
async def test_revoke_removes_every_session_of_the_user_while_their_slot_is_half_migrated(
    store: RedisStore, move: Move, clock: FrozenClock, share: int
) -> None:
    alice = [new_record(clock, user_id="alice") for _ in range(6)]
    bob = [new_record(clock, user_id="bob") for _ in range(3)]
    await create_all(store, alice, bob)
    await move.begin()
    await move.move_some(share)

    assert await store.destroy_user_sessions("alice") == len(alice)
    assert await still_there(store, alice) == [False] * len(alice)
    assert await still_there(store, bob) == [True] * len(bob)
    assert await sessions_of(store, "alice") == []
    assert await sessions_of(store, "bob") == by_key(bob)


@SHARES
async def test_cleanup_removes_exactly_the_expired_sessions_while_their_slot_is_half_migrated(
    store: RedisStore, move: Move, clock: FrozenClock, share: int
) -> None:
    expiring = [new_record(clock, lifetime=60) for _ in range(5)]
    lasting = [new_record(clock, lifetime=2 * DAY, user_id="carol") for _ in range(4)]
    await create_all(store, expiring, lasting)
    await move.begin()
    await move.move_some(share)
    clock.advance(DAY)

    assert await store.cleanup_expired_sessions() == len(expiring)
    assert await still_there(store, lasting) == [True] * len(lasting)
    assert await sessions_of(store, "carol") == by_key(lasting)
    assert await store.cleanup_expired_sessions() == 0


@SHARES
async def test_concurrent_reads_and_writes_succeed_while_their_slot_is_half_migrated(
    store: RedisStore, move: Move, clock: FrozenClock, share: int
) -> None:
    records = [new_record(clock, user_id=f"user{n % 3}") for n in range(12)]
    await create_all(store, records)
    await move.begin()
    await move.move_some(share)

    async def read_and_update(record: SessionRecord) -> bool:
        """Read the record as it is, then write its next version: both must succeed."""
        found = await store.read(record.key)
        following = dataclasses.replace(record, data=b'{"moved": true}', version=record.version + 1)
        return found == record and await store.update(following, expected_version=record.version)

    for _ in range(3):  # the first round opens connections; later ones reuse them, concurrently
        outcomes = await concurrently(*(partial(read_and_update, record) for record in records))
        assert outcomes == [True] * len(records)
        records = [
            dataclasses.replace(r, data=b'{"moved": true}', version=r.version + 1) for r in records
        ]

"""A cluster node restarted empty takes users' indexes with it; revoke must still work.

Records and indexes spread over the primaries by their digests, so a node that loses
its data (restarted without persistence, or a lagging replica promoted) can lose a
user's index while the user's records live on elsewhere. Listing and revoking must
still find every one of those records, and ``asgi-sessions repair`` must rebuild the
index so that they are found through it again.
"""

from __future__ import annotations

import hashlib
import re
from typing import cast

import anyio
import pytest
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis_cluster import Cluster

from asgi_sessions import cli
from asgi_sessions.stores.redis import RedisStore
from asgi_sessions.testing import FrozenClock
from asgi_sessions.testing.store_suite import new_record

pytest_plugins = ["redis_cluster"]

PREFIX = "loss:"


def index_slot(user_id: str) -> int:
    return key_slot(f"{PREFIX}u:{hashlib.sha256(user_id.encode()).hexdigest()}".encode())


def users_indexed_on(cluster: Cluster, port: int, count: int) -> list[str]:
    """``count`` user ids whose index sits on the primary at ``port``."""
    served = [start for start, node in cluster.slot_owners().items() if node.port == port]
    ranges = sorted(cluster.slot_owners())

    def on_node(user: str) -> bool:
        slot = index_slot(user)
        return max(start for start in ranges if start <= slot) in served

    return [user for user in (f"user-{n}" for n in range(1000)) if on_node(user)][:count]


def restart_empty(cluster: Cluster, port: int) -> None:
    """Kill a primary and start it again with nothing: it keeps its slots, not its data."""
    node = cluster.node(port)
    node.kill()
    node.start()
    cluster.wait_until_healthy()


async def index_members(url: str, user_id: str) -> set[bytes]:
    client = RedisCluster.from_url(url.replace("+cluster", ""))
    try:
        index = f"{PREFIX}u:{hashlib.sha256(user_id.encode()).hexdigest()}"
        return set(cast(list[bytes], await client.zrange(index, 0, -1)))
    finally:
        await client.aclose()


def test_revoke_and_repair_find_every_session_after_a_node_restarts_empty(
    redis_cluster_of_its_own: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = redis_cluster_of_its_own
    clock = FrozenClock()
    lost = cluster.primaries()[0]
    revoked_first, repaired_first = users_indexed_on(cluster, lost.port, 2)
    sessions = {
        user: [new_record(clock, user_id=user) for _ in range(8)]
        for user in (revoked_first, repaired_first)
    }

    async def before() -> None:
        async with RedisStore(cluster.url, prefix=PREFIX, clock=clock) as store:
            await store.repair_user_index()  # every index known complete
            for records in sessions.values():
                for record in records:
                    await store.create(record)
            for user, records in sessions.items():
                assert len(await store.user_sessions(user)) == len(records)

    anyio.run(before)
    restart_empty(cluster, lost.port)

    async def after_the_loss() -> dict[str, set[str]]:
        async with RedisStore(cluster.url, prefix=PREFIX, clock=clock) as store:
            alive = {
                user: {r.key for r in records if await store.read(r.key) is not None}
                for user, records in sessions.items()
            }
            assert all(alive.values()), "some records live on the other primaries"
            assert await index_members(cluster.url, revoked_first) == set()  # the index is gone
            for user, keys in alive.items():
                assert {r.key for r in await store.user_sessions(user)} == keys
            assert await store.destroy_user_sessions(revoked_first) == len(alive[revoked_first])
            for key in alive[revoked_first]:
                assert await store.read(key) is None, "a revoked session still reads"
            return alive

    alive = anyio.run(after_the_loss)

    assert cli.main(["repair", cluster.url + f"?prefix={PREFIX}"]) == 0
    assert re.search(r"repaired the user index: [1-9]\d* index links", capsys.readouterr().out)
    repaired = anyio.run(index_members, cluster.url, repaired_first)
    assert repaired == {key.encode() for key in alive[repaired_first]}

    assert (
        cli.main(["revoke", cluster.url + f"?prefix={PREFIX}", "--user", repaired_first, "--yes"])
        == 0
    )
    assert f"revoked {len(alive[repaired_first])} session" in capsys.readouterr().out

    async def gone() -> None:
        async with RedisStore(cluster.url, prefix=PREFIX, clock=clock) as store:
            for key in alive[repaired_first]:
                assert await store.read(key) is None

    anyio.run(gone)

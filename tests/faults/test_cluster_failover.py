"""A Redis Cluster primary killed under load: 503 while its replica takes over, never a
500, service resumes without restarting the app, and with ``wait_for_replicas=1`` no
write answered 200 is lost.

The cluster has a replica per primary and a one-second node timeout. 32 clients, half
on each of two app workers (two apps with a store each, as two processes would have),
keep writing to their sessions while one primary is killed with SIGKILL. The replica is
promoted, the killed node is started again and rejoins as the new primary's replica,
and every client must then be served. Afterwards every write answered 200 is read back:
one missing is an acknowledged write lost in the failover.

Replication is asynchronous, so a primary can acknowledge a write its replica never
gets. On loopback a replica is rarely behind, so the second scenario makes it so, as a
partition would: the replica is frozen (SIGSTOP) and its link to the primary closed,
writes go on for a while, then the primary is killed and the replica woken. Without
waiting, the writes the primary took alone are gone; with ``wait_for_replicas=1`` they
were never acknowledged (503), so nothing acknowledged is lost.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import anyio
import pytest
from redis_cluster import Cluster, Node, wait_until

from asgi_sessions.stores import create_store
from asgi_sessions.stores.base import SessionStore
from faults.load import CLIENTS, Load, Tally, in_thread
from faults.stores import TIMEOUT, with_options

pytestmark = pytest.mark.anyio
pytest_plugins = ["redis_cluster"]

WORKERS = 2
PREFIX = "failover:"


@pytest.fixture(params=[0, 1], ids=["no-wait", "wait-for-1-replica"])
def wait_for_replicas(request: pytest.FixtureRequest) -> int:
    replicas: int = request.param
    return replicas


@pytest.fixture
async def stores(
    redis_cluster_with_replicas: Cluster, wait_for_replicas: int
) -> AsyncIterator[list[SessionStore]]:
    """One store per worker on the cluster, with half-second timeouts, built from its
    URL as an app builds it (``wait_for_replicas`` in the query string)."""
    url = with_options(
        redis_cluster_with_replicas.url,
        prefix=PREFIX,
        connect_timeout=TIMEOUT,
        socket_timeout=TIMEOUT,
        wait_for_replicas=wait_for_replicas,
    )
    built = [create_store(url) for _ in range(WORKERS)]
    yield built
    for store in built:
        await store.close()


def failed_over(cluster: Cluster, killed: Node, replica: Node) -> None:
    """Wait until ``replica`` serves what ``killed`` served and the cluster is ok again."""

    def done() -> bool:
        owners = cluster.slot_owners().values()
        return killed not in owners and replica in owners and cluster.healthy()

    wait_until(done, f"node {replica.port} did not take over from {killed.port}")


async def kill_a_primary_under_load(
    cluster: Cluster, stores: list[SessionStore], scenario: str, *, cut_off_replica: bool
) -> tuple[Tally, dict[str, object]]:
    """Kill a primary (not the one the URL names) while every client writes; wait for
    its replica to take over, start it again as a replica, wait until every client is
    served, then count acknowledged writes lost. With ``cut_off_replica`` the replica
    is first frozen and cut off, and writes go on for a while before the kill."""
    victim = cluster.primaries()[1]
    replica = cluster.replica_of(victim)
    load = Load(stores)
    try:
        await load.login()
        async with anyio.create_task_group() as group:
            for index in range(CLIENTS):
                group.start_soon(load.keep_writing, index)
            await load.answered(more=3 * CLIENTS)
            if cut_off_replica:
                replica.pause()
                await in_thread(lambda: victim.cli("CLIENT", "KILL", "TYPE", "replica"))
                await load.answered(more=3 * CLIENTS)
            killed_at = time.perf_counter()
            await in_thread(victim.kill)
            replica.resume()
            await in_thread(lambda: failed_over(cluster, victim, replica))
            failover_seconds = time.perf_counter() - killed_at
            await in_thread(victim.start)
            await in_thread(cluster.wait_until_healthy)
            await load.served_again()
            load.running = False
        lost = await load.lost()
    finally:
        await load.aclose()
    figures = load.report(scenario, killed_at, failover_seconds, lost)
    return load.tally, figures


async def test_a_primary_killed_under_load_is_503_never_500_and_service_resumes(
    redis_cluster_with_replicas: Cluster,
    stores: list[SessionStore],
    wait_for_replicas: int,
) -> None:
    scenario = f"primary killed under load, wait_for_replicas={wait_for_replicas}"
    tally, figures = await kill_a_primary_under_load(
        redis_cluster_with_replicas, stores, scenario, cut_off_replica=False
    )
    assert tally.escaped == [], "nothing escapes the app"
    assert set(tally.statuses) <= {200, 503}, "the outage is 503s, never a 500"
    assert tally.statuses[503] > 0, "the kill was felt"
    if wait_for_replicas:
        assert figures["acknowledged_writes_lost"] == 0


async def test_writes_acknowledged_while_the_replica_was_cut_off_are_lost_only_without_waiting(
    redis_cluster_with_replicas: Cluster,
    stores: list[SessionStore],
    wait_for_replicas: int,
) -> None:
    scenario = f"replica cut off, then primary killed, wait_for_replicas={wait_for_replicas}"
    tally, figures = await kill_a_primary_under_load(
        redis_cluster_with_replicas, stores, scenario, cut_off_replica=True
    )
    assert tally.escaped == []
    assert set(tally.statuses) <= {200, 503}
    if wait_for_replicas:
        assert figures["acknowledged_writes_lost"] == 0, "a write no replica had was a 503"
    else:
        assert figures["acknowledged_writes_lost"], "without waiting, the primary's own go"

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

from collections.abc import AsyncIterator

import pytest
from redis_cluster import Cluster, Node, wait_until

from asgi_sessions.stores.base import SessionStore
from faults.load import Failover, check_outage, kill_under_load
from faults.stores import worker_stores

pytestmark = pytest.mark.anyio
pytest_plugins = ["redis_cluster", "faults.stores"]

PREFIX = "failover:"


@pytest.fixture
async def stores(
    redis_cluster_with_replicas: Cluster, wait_for_replicas: int
) -> AsyncIterator[list[SessionStore]]:
    """One store per worker on the cluster (``worker_stores``)."""
    async with worker_stores(
        redis_cluster_with_replicas.url, wait_for_replicas, prefix=PREFIX
    ) as built:
        yield built


def failed_over(cluster: Cluster, killed: Node, replica: Node) -> None:
    """Wait until ``replica`` serves what ``killed`` served and the cluster is ok again."""

    def done() -> bool:
        owners = cluster.slot_owners().values()
        return killed not in owners and replica in owners and cluster.healthy()

    wait_until(done, f"node {replica.port} did not take over from {killed.port}")


def losing_a_primary(cluster: Cluster) -> Failover:
    """A primary other than the one the URL names; its replica takes over, and the
    killed node comes back as that replica's replica."""
    victim = cluster.primaries()[1]
    replica = cluster.replica_of(victim)
    return Failover(
        victim,
        replica,
        lambda: failed_over(cluster, victim, replica),
        victim.start,
        cluster.wait_until_healthy,
    )


async def test_a_primary_killed_under_load_is_503_never_500_and_service_resumes(
    redis_cluster_with_replicas: Cluster,
    stores: list[SessionStore],
    wait_for_replicas: int,
) -> None:
    scenario = f"primary killed under load, wait_for_replicas={wait_for_replicas}"
    failover = losing_a_primary(redis_cluster_with_replicas)
    tally, figures = await kill_under_load(stores, scenario, failover, cut_off_replica=False)
    check_outage(tally, figures, wait_for_replicas)
    assert tally.statuses[503] > 0, "the kill was felt"


async def test_writes_acknowledged_while_the_replica_was_cut_off_are_lost_only_without_waiting(
    redis_cluster_with_replicas: Cluster,
    stores: list[SessionStore],
    wait_for_replicas: int,
) -> None:
    scenario = f"replica cut off, then primary killed, wait_for_replicas={wait_for_replicas}"
    failover = losing_a_primary(redis_cluster_with_replicas)
    tally, figures = await kill_under_load(stores, scenario, failover, cut_off_replica=True)
    check_outage(tally, figures, wait_for_replicas)
    if not wait_for_replicas:
        assert figures["acknowledged_writes_lost"], "without waiting, the primary's own go"

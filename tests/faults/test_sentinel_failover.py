"""A Redis primary behind Sentinel killed under load: 503 while the Sentinels promote its
replica, never a 500, service resumes without restarting the app, and with
``wait_for_replicas=1`` no write answered 200 is lost.

A primary, its replica and three Sentinels (quorum two, ``down-after-milliseconds``
1000). 32 clients, half on each of two app workers, keep writing to their sessions
while the primary is killed with SIGKILL. The Sentinels promote the replica, the
killed server is started again as the new primary's replica, as a restart with the
configuration the Sentinels rewrite would (with ``wait_for_replicas=1`` writes need
it: with one replica, each write until then is a 503), and every client must then be
served by the same stores. Afterwards every write answered 200 is
read back: one missing is an acknowledged write lost in the failover.

As on a cluster, the second scenario makes the replica fall behind, as a partition
would: it is frozen (SIGSTOP) and its link to the primary closed, writes go on for a
while, then the primary is killed and the replica woken. Without waiting, what the
primary took alone is gone (the number is reported, not asserted: it depends on how
many writes landed in that window); with ``wait_for_replicas=1`` those writes were
never acknowledged, so nothing acknowledged is lost.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from asgi_sessions.stores.base import SessionStore
from asgi_sessions.testing._redis_servers import SentinelDeployment
from faults.load import Failover, check_outage, kill_under_load
from faults.stores import worker_stores

pytestmark = pytest.mark.anyio
pytest_plugins = ["redis_sentinel", "faults.stores"]

PREFIX = "failover:"


@pytest.fixture
async def stores(
    redis_sentinel_of_its_own: SentinelDeployment, wait_for_replicas: int
) -> AsyncIterator[list[SessionStore]]:
    """One store per worker, built from the ``redis+sentinel://`` URL (``worker_stores``)."""
    async with worker_stores(
        redis_sentinel_of_its_own.url, wait_for_replicas, prefix=PREFIX
    ) as built:
        yield built


def losing_its_primary(deployment: SentinelDeployment) -> Failover:
    """The Sentinels promote the replica; the killed server comes back as its replica,
    as a restart with the configuration the Sentinels rewrite would."""
    victim, replica = deployment.primary(), deployment.replica()

    def failed_over() -> None:
        deployment.wait_until_failed_over(victim)
        assert deployment.primary() is replica

    return Failover(
        victim,
        replica,
        failed_over,
        lambda: victim.start(replica_of=replica),
        deployment.wait_until_healthy,
    )


async def test_a_primary_killed_under_load_is_503_never_500_and_service_resumes(
    redis_sentinel_of_its_own: SentinelDeployment,
    stores: list[SessionStore],
    wait_for_replicas: int,
) -> None:
    scenario = f"Sentinel: primary killed under load, wait_for_replicas={wait_for_replicas}"
    failover = losing_its_primary(redis_sentinel_of_its_own)
    tally, figures = await kill_under_load(stores, scenario, failover, cut_off_replica=False)
    check_outage(tally, figures, wait_for_replicas)
    assert tally.statuses[503] > 0, "the kill was felt"


async def test_writes_acknowledged_while_the_replica_was_cut_off_are_kept_when_waiting(
    redis_sentinel_of_its_own: SentinelDeployment,
    stores: list[SessionStore],
    wait_for_replicas: int,
) -> None:
    scenario = (
        f"Sentinel: replica cut off, then primary killed, wait_for_replicas={wait_for_replicas}"
    )
    failover = losing_its_primary(redis_sentinel_of_its_own)
    tally, figures = await kill_under_load(stores, scenario, failover, cut_off_replica=True)
    check_outage(tally, figures, wait_for_replicas)

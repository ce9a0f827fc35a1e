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

import time
from collections.abc import AsyncIterator

import anyio
import pytest

from asgi_sessions.stores import create_store
from asgi_sessions.stores.base import SessionStore
from asgi_sessions.testing._redis_servers import SentinelDeployment
from faults.load import CLIENTS, Load, Tally, in_thread
from faults.stores import TIMEOUT, with_options

pytestmark = pytest.mark.anyio
pytest_plugins = ["redis_sentinel"]

WORKERS = 2
PREFIX = "failover:"


@pytest.fixture(params=[0, 1], ids=["no-wait", "wait-for-1-replica"])
def wait_for_replicas(request: pytest.FixtureRequest) -> int:
    replicas: int = request.param
    return replicas


@pytest.fixture
async def stores(
    redis_sentinel_of_its_own: SentinelDeployment, wait_for_replicas: int
) -> AsyncIterator[list[SessionStore]]:
    """One store per worker, built from the ``redis+sentinel://`` URL as an app builds
    it, with half-second timeouts and ``wait_for_replicas`` in the query string."""
    url = with_options(
        redis_sentinel_of_its_own.url,
        prefix=PREFIX,
        connect_timeout=TIMEOUT,
        socket_timeout=TIMEOUT,
        wait_for_replicas=wait_for_replicas,
    )
    built = [create_store(url) for _ in range(WORKERS)]
    yield built
    for store in built:
        await store.close()


async def kill_the_primary_under_load(
    deployment: SentinelDeployment,
    stores: list[SessionStore],
    scenario: str,
    *,
    cut_off_replica: bool,
) -> tuple[Tally, dict[str, object]]:
    """Kill the primary while every client writes; wait until the Sentinels name the
    replica, start the killed server again as its replica and wait until the Sentinels
    see it in sync, wait until every client is served, then count acknowledged writes lost."""
    victim = deployment.primary()
    replica = deployment.replica()
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
            await in_thread(lambda: deployment.wait_until_failed_over(victim))
            failover_seconds = time.perf_counter() - killed_at
            assert deployment.primary() is replica
            await in_thread(lambda: victim.start(replica_of=replica))
            await in_thread(deployment.wait_until_healthy)
            await load.served_again()
            load.running = False
        lost = await load.lost()
    finally:
        await load.aclose()
    return load.tally, load.report(scenario, killed_at, failover_seconds, lost)


async def test_a_primary_killed_under_load_is_503_never_500_and_service_resumes(
    redis_sentinel_of_its_own: SentinelDeployment,
    stores: list[SessionStore],
    wait_for_replicas: int,
) -> None:
    scenario = f"Sentinel: primary killed under load, wait_for_replicas={wait_for_replicas}"
    tally, figures = await kill_the_primary_under_load(
        redis_sentinel_of_its_own, stores, scenario, cut_off_replica=False
    )
    assert tally.escaped == [], "nothing escapes the app"
    assert set(tally.statuses) <= {200, 503}, "the outage is 503s, never a 500"
    assert tally.statuses[503] > 0, "the kill was felt"
    if wait_for_replicas:
        assert figures["acknowledged_writes_lost"] == 0


async def test_writes_acknowledged_while_the_replica_was_cut_off_are_kept_when_waiting(
    redis_sentinel_of_its_own: SentinelDeployment,
    stores: list[SessionStore],
    wait_for_replicas: int,
) -> None:
    scenario = (
        f"Sentinel: replica cut off, then primary killed, wait_for_replicas={wait_for_replicas}"
    )
    tally, figures = await kill_the_primary_under_load(
        redis_sentinel_of_its_own, stores, scenario, cut_off_replica=True
    )
    assert tally.escaped == []
    assert set(tally.statuses) <= {200, 503}
    if wait_for_replicas:
        assert figures["acknowledged_writes_lost"] == 0, "a write no replica had was a 503"

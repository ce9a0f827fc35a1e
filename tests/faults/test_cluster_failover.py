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

import dataclasses
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable

import anyio
import anyio.to_thread
import httpx
import pytest
from redis_cluster import Cluster, Node, wait_until

from asgi_sessions.stores import create_store
from asgi_sessions.stores.base import SessionStore
from asgi_sessions.testing.app import build_app
from faults.stores import TIMEOUT, with_options
from faults.traffic import RECOVERY_DEADLINE, save

pytestmark = pytest.mark.anyio
pytest_plugins = ["redis_cluster"]

CLIENTS = 32
WORKERS = 2
PREFIX = "failover:"


@dataclasses.dataclass
class Tally:
    """What the clients got back, and which writes were acknowledged."""

    statuses: Counter[int] = dataclasses.field(default_factory=Counter)
    escaped: list[str] = dataclasses.field(default_factory=list)
    """Errors that escaped the app: a server would drop the connection."""
    acknowledged: list[dict[str, str]] = dataclasses.field(
        default_factory=lambda: [{} for _ in range(CLIENTS)]
    )
    last_refused: float = 0.0
    """perf_counter() of the last answer that was not a 200."""

    @property
    def answers(self) -> int:
        return sum(self.statuses.values()) + len(self.escaped)


class Load:
    """CLIENTS clients writing to their own sessions, spread over the apps of ``stores``."""

    def __init__(self, stores: list[SessionStore]) -> None:
        transports = [httpx.ASGITransport(build_app(store)) for store in stores]
        self.clients = [
            httpx.AsyncClient(transport=transports[n % len(stores)], base_url="http://t")
            for n in range(CLIENTS)
        ]
        self.tally = Tally()
        self.running = True

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()

    async def login(self) -> None:
        for index, client in enumerate(self.clients):
            assert (await client.post(f"/login/user{index}")).status_code == 200

    async def write(self, index: int, number: int) -> int:
        """One write of client ``index``; counted, and remembered if acknowledged."""
        key, value = f"k{number}", f"v{index}-{number}"
        try:
            response = await self.clients[index].post(f"/set/{key}", json=value)
        except Exception as exc:  # the app let it escape: a server drops the connection
            self.tally.escaped.append(f"{type(exc).__name__}: {exc}")
            self.tally.last_refused = time.perf_counter()
            return 0
        self.tally.statuses[response.status_code] += 1
        if response.status_code == 200:
            self.tally.acknowledged[index][key] = value
        else:
            self.tally.last_refused = time.perf_counter()
            if response.status_code == 503:
                assert response.headers["retry-after"]
                assert "set-cookie" not in response.headers
        return response.status_code

    async def keep_writing(self, index: int) -> None:
        number = 0
        while self.running:
            await self.write(index, number)
            number += 1
            await anyio.sleep(0.005)

    async def answered(self, more: int) -> None:
        """Wait until the clients have had ``more`` answers since the call."""
        target = self.tally.answers + more
        with anyio.fail_after(RECOVERY_DEADLINE):
            while self.tally.answers < target:
                await anyio.sleep(0.01)

    async def served_again(self) -> None:
        """Wait until every client has a write answered 200."""
        with anyio.fail_after(RECOVERY_DEADLINE):
            for index in range(CLIENTS):
                number = 1_000_000
                while await self.write(index, number) != 200:
                    number += 1
                    await anyio.sleep(0.05)

    async def lost(self) -> int:
        """Read every session back; count acknowledged writes missing or changed."""
        lost = 0
        for client, acknowledged in zip(self.clients, self.tally.acknowledged, strict=True):
            response = await client.get("/read")
            assert response.status_code == 200
            data = response.json()["data"]
            lost += sum(data.get(key) != value for key, value in acknowledged.items())
        return lost


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


async def in_thread(step: Callable[[], object]) -> None:
    await anyio.to_thread.run_sync(step)


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
    tally = load.tally
    figures: dict[str, object] = {
        "clients": CLIENTS,
        "workers": WORKERS,
        "answers": tally.answers,
        "200": tally.statuses[200],
        "503": tally.statuses[503],
        "500": tally.statuses[500],
        "escaped": len(tally.escaped),
        "failover_seconds": round(failover_seconds, 2),
        "refused_until_seconds_after_kill": round(tally.last_refused - killed_at, 2),
        "acknowledged_writes_lost": lost,
    }
    print(f"\n[failover] {scenario}: {figures} {Counter(tally.escaped).most_common(3)}")
    save("failover", scenario, figures)
    return tally, figures


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

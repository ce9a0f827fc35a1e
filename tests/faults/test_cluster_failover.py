"""A Redis Cluster primary killed under load: 503 while its replica takes over, never a
500, and service resumes without restarting the app.

The cluster has a replica per primary and a one-second node timeout. 32 clients, half
on each of two app workers (two apps with a store each, as two processes would have),
keep writing to their sessions while one primary is killed with SIGKILL. The replica is
promoted, the killed node is started again and rejoins as the new primary's replica,
and every client must then be served. Afterwards every write answered 200 is read back:
one missing is an acknowledged write lost in the failover.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import AsyncIterator

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
WARM_UP = 0.5
"""Seconds of traffic before the kill."""


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


class Load:
    """CLIENTS clients writing to their own sessions, spread over WORKERS apps."""

    def __init__(self, stores: list[SessionStore]) -> None:
        self.transports = [httpx.ASGITransport(build_app(store)) for store in stores]
        self.clients = [
            httpx.AsyncClient(transport=self.transports[n % len(stores)], base_url="http://t")
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


@pytest.fixture
async def stores(redis_cluster_with_replicas: Cluster) -> AsyncIterator[list[SessionStore]]:
    """One store per worker, on the cluster, with half-second timeouts."""
    url = with_options(
        redis_cluster_with_replicas.url,
        prefix="failover:",
        connect_timeout=TIMEOUT,
        socket_timeout=TIMEOUT,
    )
    opened = [create_store(url) for _ in range(WORKERS)]
    yield opened
    for store in opened:
        await store.close()


def failed_over(cluster: Cluster, killed: Node, replica: Node) -> None:
    """Wait until ``replica`` serves what ``killed`` served and the cluster is ok again."""

    def done() -> bool:
        owners = cluster.slot_owners().values()
        return killed not in owners and replica in owners and cluster.healthy()

    wait_until(done, f"node {replica.port} did not take over from {killed.port}")


async def test_a_primary_killed_under_load_is_503_never_500_and_service_resumes(
    redis_cluster_with_replicas: Cluster, stores: list[SessionStore]
) -> None:
    cluster = redis_cluster_with_replicas
    victim = cluster.primaries()[1]  # not the node the URL names
    replica = cluster.replica_of(victim)
    load = Load(stores)
    try:
        await load.login()
        async with anyio.create_task_group() as group:
            for index in range(CLIENTS):
                group.start_soon(load.keep_writing, index)
            await anyio.sleep(WARM_UP)
            killed_at = time.perf_counter()
            await anyio.to_thread.run_sync(victim.kill)
            await anyio.to_thread.run_sync(failed_over, cluster, victim, replica)
            failover_seconds = time.perf_counter() - killed_at
            await anyio.to_thread.run_sync(victim.start)
            await anyio.to_thread.run_sync(cluster.wait_until_healthy)
            await load.served_again()
            load.running = False
        lost = await load.lost()
    finally:
        await load.aclose()
    tally = load.tally
    figures = {
        "clients": CLIENTS,
        "workers": WORKERS,
        "answers": sum(tally.statuses.values()) + len(tally.escaped),
        "200": tally.statuses[200],
        "503": tally.statuses[503],
        "500": tally.statuses[500],
        "escaped": len(tally.escaped),
        "failover_seconds": round(failover_seconds, 2),
        "refused_for_seconds": round(tally.last_refused - killed_at, 2),
        "acknowledged_writes_lost": lost,
    }
    print(f"\n[failover] primary killed: {figures} {Counter(tally.escaped).most_common(3)}")
    save("failover", "primary killed under load", figures)
    assert tally.escaped == [], "nothing escapes the app"
    assert set(tally.statuses) <= {200, 503}, "the outage is 503s, never a 500"
    assert tally.statuses[503] > 0, "the kill was felt"

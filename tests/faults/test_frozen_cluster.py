"""A Redis Cluster that stops answering while in use: every concurrent request is a 503
in bounded time, whatever their number, and service resumes by itself.

Every node is frozen (SIGSTOP): connections stay open and nothing answers, as when a
network path black-holes. Each command times out; the client then re-learns the
cluster's layout, asking one startup node after another, each a timeout. redis-py does
that under a lock, so each waiting request repeated the whole attempt in turn: with 20
requests the last waited about 30 s. The store's cluster client shares one attempt among
them, and its failure stands for a second.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import anyio
import httpx
import pytest
from redis_cluster import Cluster

from asgi_sessions.stores import create_store
from asgi_sessions.testing.app import build_app
from faults.stores import TIMEOUT, with_options
from faults.traffic import RECOVERY_DEADLINE, save

pytestmark = pytest.mark.anyio
pytest_plugins = ["redis_cluster"]

CLIENTS = 20
ANSWER_WITHIN = 6 * TIMEOUT
"""A request's bound while the cluster is silent: a command timeout, then one shared
attempt to re-learn the layout (a timeout per startup node), never one per request."""


async def together(calls: list[Callable[[], Awaitable[int]]]) -> list[tuple[float, int]]:
    """Run ``calls`` at once; each one's (seconds taken, status)."""
    outcomes: list[tuple[float, int]] = []
    started = time.perf_counter()

    async def one(call: Callable[[], Awaitable[int]]) -> None:
        status = await call()
        outcomes.append((time.perf_counter() - started, status))

    async with anyio.create_task_group() as group:
        for call in calls:
            group.start_soon(one, call)
    return outcomes


async def test_a_frozen_cluster_is_503_for_every_request_in_bounded_time_then_served(
    redis_cluster_of_its_own: Cluster, namespace: str
) -> None:
    cluster = redis_cluster_of_its_own
    url = with_options(
        cluster.url, prefix=f"{namespace}:", connect_timeout=TIMEOUT, socket_timeout=TIMEOUT
    )
    store = create_store(url)
    transport = httpx.ASGITransport(build_app(store))
    clients = [httpx.AsyncClient(transport=transport, base_url="http://t") for _ in range(CLIENTS)]

    def writer(client: httpx.AsyncClient) -> Callable[[], Awaitable[int]]:
        async def write() -> int:
            return (await client.post("/set/cart", json=["apple"])).status_code

        return write

    try:
        for index, client in enumerate(clients):
            assert (await client.post(f"/login/user{index}")).status_code == 200
        for node in cluster.nodes:
            node.pause()
        try:
            first = await together([writer(client) for client in clients])
            right_after = await together([writer(client) for client in clients])
        finally:
            for node in cluster.nodes:
                node.resume()
        recovery_started = time.perf_counter()
        with anyio.fail_after(RECOVERY_DEADLINE):
            while await writer(clients[0])() != 200:
                await anyio.sleep(0.05)
        recovered = time.perf_counter() - recovery_started
    finally:
        for client in clients:
            await client.aclose()
        await store.close()
    figures = {
        "requests": CLIENTS,
        "slowest_seconds": round(max(seconds for seconds, _ in first), 3),
        "slowest_right_after_seconds": round(max(seconds for seconds, _ in right_after), 3),
        "recovery_seconds": round(recovered, 3),
    }
    print(f"\n[frozen cluster] {figures}")
    save("frozen_cluster", "every node frozen, 20 concurrent requests", figures)
    assert [status for _, status in first + right_after] == [503] * (2 * CLIENTS)
    assert figures["slowest_seconds"] < ANSWER_WITHIN
    assert figures["slowest_right_after_seconds"] < ANSWER_WITHIN

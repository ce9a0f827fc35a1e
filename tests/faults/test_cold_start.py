"""A worker's first requests reach a server that is down: they fail together, in one
timeout, and the store connects by itself once the server is up.

A store opens its pool (PostgreSQL) or learns the cluster's layout (Redis Cluster) on
first use. If that first attempt cannot finish, concurrent callers must not queue behind
each other's attempts, each waiting its own timeout in turn: they share one attempt, and
its failure is remembered for a moment, so callers meanwhile fail at once. After that a
new attempt is made, so the store recovers without a restart.

The server is down in two ways: silent (a ``FaultProxy`` holding every connection it
accepts, as a hung server or a black-holed route does) and refused (a closed port). Then
it comes up: the proxy starts forwarding, or one starts listening on the closed port.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import anyio
import httpx
import pytest

from asgi_sessions.exceptions import StoreUnavailable
from asgi_sessions.stores import create_store
from asgi_sessions.testing.app import build_app
from asgi_sessions.testing.store_suite import new_key
from faults.proxy import FaultProxy
from faults.servers import free_port
from faults.stores import TIMEOUT, namespaced, remove_namespace, via, with_options
from faults.traffic import RECOVERY_DEADLINE, save

pytestmark = pytest.mark.anyio
pytest_plugins = ["faults.stores"]

CALLERS = 20
ANSWER_WITHIN = 2 * TIMEOUT
"""Every concurrent first caller has its answer within this many seconds."""


@dataclass
class DownServer:
    """A store URL whose server is down, and the step that brings the server up."""

    url: str
    come_up: Callable[[], Awaitable[None]]
    connections: Callable[[], int] | None
    """Connections the silent server has accepted so far; None for a closed port."""


@pytest.fixture(params=["postgres", "redis", "cluster"])
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(params=["silent", "refused"])
async def down(
    backend: str, request: pytest.FixtureRequest, namespace: str
) -> AsyncIterator[DownServer]:
    """The real server of ``backend`` behind an address that is silent or refused."""
    direct = namespaced(backend, request, namespace)
    host, port = "127.0.0.1", urlsplit(direct).port or 0
    timeout = "command_timeout" if backend == "postgres" else "socket_timeout"
    proxies: list[FaultProxy] = []
    connections: Callable[[], int] | None = None
    if request.param == "silent":
        proxy = await FaultProxy(host, port).start()
        proxy.set("hold")
        proxies.append(proxy)
        listen = proxy.port

        def count() -> int:
            return proxy.connections

        async def come_up() -> None:
            proxy.set("pass")

        connections = count

    else:
        listen = free_port()

        async def come_up() -> None:
            proxies.append(await FaultProxy(host, port, port=listen).start())

    url = with_options(via(direct, listen), connect_timeout=TIMEOUT, **{timeout: TIMEOUT})
    try:
        yield DownServer(url, come_up, connections)
    finally:
        for proxy in proxies:
            await proxy.close()
        await remove_namespace(direct)


async def at_once(call: Callable[[], Awaitable[object]]) -> list[tuple[float, object]]:
    """Start ``call`` CALLERS times together; each one's (seconds taken, result or error)."""
    outcomes: list[tuple[float, object]] = []
    started = time.perf_counter()

    async def one() -> None:
        try:
            outcome: object = await call()
        except Exception as exc:
            outcome = exc
        outcomes.append((time.perf_counter() - started, outcome))

    async with anyio.create_task_group() as group:
        for _ in range(CALLERS):
            group.start_soon(one)
    return outcomes


async def until_served(call: Callable[[], Awaitable[bool]]) -> float:
    """Retry ``call`` until it reports success; return how long that took."""
    started = time.perf_counter()
    with anyio.fail_after(RECOVERY_DEADLINE):
        while not await call():
            await anyio.sleep(0.05)
    return time.perf_counter() - started


def report(
    scenario: str,
    outcomes: list[tuple[float, object]],
    recovered: float,
    again: list[tuple[float, object]] | None = None,
) -> None:
    """Print a scenario's figures and keep them in tests/artifacts/faults.json."""
    figures = {
        "callers": len(outcomes),
        "slowest_seconds": round(max(seconds for seconds, _ in outcomes), 3),
        "recovery_seconds": round(recovered, 3),
    }
    if again is not None:
        figures["slowest_right_after_seconds"] = round(max(seconds for seconds, _ in again), 3)
    print(f"\n[cold start] {scenario}: {figures}")
    save("cold_start", scenario, figures)


async def test_concurrent_first_calls_to_a_down_server_fail_together_then_the_store_recovers(
    backend: str, down: DownServer, request: pytest.FixtureRequest
) -> None:
    store = create_store(down.url)

    async def served() -> bool:
        try:
            return await store.read(new_key()) is None
        except StoreUnavailable:
            return False

    try:
        outcomes = await at_once(lambda: store.read(new_key()))
        assert all(isinstance(outcome, StoreUnavailable) for _, outcome in outcomes)
        slowest = max(seconds for seconds, _ in outcomes)
        assert slowest < ANSWER_WITHIN, f"the last of {CALLERS} callers waited {slowest:.2f} s"
        # A pool (PostgreSQL) or a cluster's layout is opened by one attempt for all
        # callers, and its failure stands for a moment: callers right after it fail at
        # once, making no attempt. (One Redis server has no such step: each call opens
        # its own connection, in parallel, so none waits for another's.)
        pooled = backend != "redis" and down.connections is not None
        if pooled:
            assert down.connections is not None and down.connections() == 1
        again = await at_once(lambda: store.read(new_key()))
        assert all(isinstance(outcome, StoreUnavailable) for _, outcome in again)
        if pooled:
            assert down.connections is not None and down.connections() == 1
        await down.come_up()
        recovered = await until_served(served)
    finally:
        await store.close()
    report(f"{request.node.callspec.id}: store calls", outcomes, recovered, again)


async def test_concurrent_first_requests_to_a_down_server_are_503_together_then_served(
    backend: str, down: DownServer, request: pytest.FixtureRequest
) -> None:
    store = create_store(down.url)
    transport = httpx.ASGITransport(build_app(store))

    async def write() -> int:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return (await client.post("/set/cart", json=["apple"])).status_code

    async def served() -> bool:
        return await write() == 200

    try:
        outcomes = await at_once(write)
        assert [status for _, status in outcomes] == [503] * CALLERS
        slowest = max(seconds for seconds, _ in outcomes)
        assert slowest < ANSWER_WITHIN, f"the last of {CALLERS} requests waited {slowest:.2f} s"
        await down.come_up()
        recovered = await until_served(served)
    finally:
        await store.close()
    report(f"{request.node.callspec.id}: HTTP requests", outcomes, recovered)

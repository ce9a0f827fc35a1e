"""One request, one deadline: a slow store costs a request about one timeout in all.

Two workers (two apps, each with its own store object) share a slowed server through a
``FaultProxy``: each chunk arrives a little over half a timeout late, so a read alone
fits in the timeout and a read followed by a write does not. Without a shared deadline
a request waited one timeout per store call (and per wait for a pooled connection),
many times the timeout in all. With it, every request is answered, 200 or 503, within
about one timeout.
"""

from __future__ import annotations

import statistics
import time
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import anyio
import httpx
import pytest

from asgi_sessions import create_session
from asgi_sessions.stores import create_store
from asgi_sessions.stores.base import SessionStore
from asgi_sessions.testing.app import build_app
from asgi_sessions.testing.clock import FrozenClock
from faults.proxy import FaultProxy
from faults.traffic import Figures, report

pytestmark = pytest.mark.anyio
pytest_plugins = ["faults.stores"]

CLIENTS = 200
WORKERS = 2
TIMEOUT = 2.0
"""The stores' timeouts here: a read takes 0.7 of it, a read and a write 1.4."""
P99_BOUND = 1.5 * TIMEOUT


def with_timeouts(url: str, seconds: float) -> str:
    """``url`` with every timeout option in its query string set to ``seconds``."""
    parts = urlsplit(url)
    query = [
        (name, str(seconds) if name.endswith("_timeout") else value)
        for name, value in parse_qsl(parts.query)
    ]
    return urlunsplit(parts._replace(query=urlencode(query)))


async def test_a_slow_store_costs_a_request_about_one_timeout_in_all(
    networked: str, proxy: FaultProxy, proxied_url: str, clock: FrozenClock
) -> None:
    url = with_timeouts(proxied_url, TIMEOUT)
    stores: list[SessionStore] = [create_store(url, clock=clock) for _ in range(WORKERS)]
    apps = [build_app(store) for store in stores]
    tokens = [await create_session(stores[0], {"n": 0}) for _ in range(CLIENTS)]
    for app in apps:  # warm each worker's pool before the fault
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
            await c.get("/read", headers={"cookie": f"session={tokens[0]}"})
    proxy.set("delay", delay=0.35 * TIMEOUT)  # each way: 0.7 of a timeout per round trip
    took: list[float] = []
    statuses: list[int] = []

    async def client(index: int) -> None:
        app = apps[index % WORKERS]
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            started = time.perf_counter()
            response = await c.post(
                "/set/n", json=index, headers={"cookie": f"session={tokens[index]}"}
            )
            took.append(time.perf_counter() - started)
            statuses.append(response.status_code)

    try:
        async with anyio.create_task_group() as group:
            for index in range(CLIENTS):
                group.start_soon(client, index)
    finally:
        proxy.set("pass")
        for store in stores:
            await store.close()
    took.sort()
    p50, p99 = statistics.median(took), took[int(len(took) * 0.99) - 1]
    figures = Figures(
        f"{networked}: {CLIENTS} clients, {WORKERS} workers, {TIMEOUT} s timeout",
        sent=CLIENTS,
        unavailable=statuses.count(503),
        errors=sum(1 for s in statuses if s >= 500 and s != 503),
        slowest_seconds=took[-1],
        note=f"p50 {p50:.2f} s, p99 {p99:.2f} s",
    )
    report(figures)
    assert set(statuses) <= {200, 503}
    assert p99 <= P99_BOUND, f"p99 {p99:.2f} s over {P99_BOUND:.2f} s: one deadline per request"

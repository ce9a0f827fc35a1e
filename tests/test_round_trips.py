"""Store round trips per request, counted on the wire, not guessed.

A proxy in front of the real PostgreSQL or Redis server counts the client's turns:
each time the store sends after the server has answered is one round trip.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from faults.proxy import FaultProxy

from asgi_sessions import create_store
from asgi_sessions.stores.base import SessionStore
from asgi_sessions.testing.app import build_app

pytestmark = pytest.mark.anyio
pytest_plugins = ["faults.stores"]  # proxy and proxied_url: Postgres and Redis


@pytest.fixture
async def store(proxied_url: str) -> AsyncIterator[SessionStore]:
    async with create_store(proxied_url) as opened:
        yield opened


async def trips(
    proxy: FaultProxy, client: httpx.AsyncClient, method: str, path: str, value: object = None
) -> int:
    before = proxy.round_trips
    response = await client.request(method, path, json=value)
    assert response.status_code == 200
    return proxy.round_trips - before


async def session_lifecycle(proxy: FaultProxy, client: httpx.AsyncClient) -> tuple[int, ...]:
    """Round trips of: a new session, an untouched and a read-only request with its
    cookie, a write, a logout; and a request without a cookie."""
    client.cookies.clear()
    return (
        await trips(proxy, client, "POST", "/set/cart", ["apple"]),
        await trips(proxy, client, "GET", "/untouched"),
        await trips(proxy, client, "GET", "/read"),
        await trips(proxy, client, "POST", "/set/cart", ["apple", "pear"]),
        await trips(proxy, client, "POST", "/logout"),
        await trips(proxy, client, "GET", "/untouched"),
    )


async def test_round_trips_per_request(proxy: FaultProxy, store: SessionStore) -> None:
    app = build_app(store, touch_interval=3600)
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        # The first pass connects, creates the table and lets asyncpg prepare each
        # statement once per connection (one extra round trip the first time only).
        await session_lifecycle(proxy, client)
        counted = await session_lifecycle(proxy, client)
    print("\nround trips (new, untouched with cookie, read-only, write, logout, no cookie):",
          counted)
    assert counted == (1, 1, 1, 2, 2, 0)

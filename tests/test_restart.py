"""Sessions survive a restart of the app process, on every store that keeps data.

The demo app runs as a real server process; it is killed without a clean shutdown
and started again on the same store, and the browser's cookie still logs it in.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from demo_server import demo_process, free_port, wait_until_serving

from asgi_sessions import create_store

pytestmark = pytest.mark.anyio
pytest_plugins = ["redis_cluster"]


@pytest.fixture(params=["postgres", "redis", "redis-cluster"])
async def store_url(request: pytest.FixtureRequest, namespace: str) -> AsyncIterator[str]:
    """A store URL with its own table or key prefix, removed afterwards."""
    if request.param == "postgres":
        url = f"{request.getfixturevalue('postgres_dsn')}?table_name={namespace}"
    else:
        fixture = "redis_url" if request.param == "redis" else "redis_cluster_url"
        url = f"{request.getfixturevalue(fixture)}?prefix={namespace}:"
    yield url
    if request.param == "postgres":
        connection = await asyncpg.connect(request.getfixturevalue("postgres_dsn"))
        await connection.execute(f'DROP TABLE IF EXISTS "{namespace}"')
        await connection.close()
    else:
        async with create_store(url) as store:
            await store.clear()


async def test_logged_in_user_stays_logged_in_across_a_process_restart(store_url: str) -> None:
    port = free_port()
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", follow_redirects=True
    ) as client:
        with demo_process(store_url, port) as first:
            await wait_until_serving(client, first)
            page = await client.post("/login", data={"name": "alice"})
            assert "Hello alice" in page.text
            first.kill()  # no clean shutdown
            first.wait()
        with demo_process(store_url, port) as second:
            await wait_until_serving(client, second)
            page = await client.get("/")
            assert "Hello alice" in page.text
            await client.post("/logout")
            assert "Hello alice" not in (await client.get("/")).text

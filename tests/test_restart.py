"""Sessions survive a restart of the app process, on every store that keeps data.

The demo app runs as a real server process; it is killed without a clean shutdown
and started again on the same store, and the browser's cookie still logs it in.
"""

from __future__ import annotations

import httpx
import pytest
from demo_server import demo_process, free_port, wait_until_serving

pytestmark = pytest.mark.anyio
pytest_plugins = ["faults.stores"]  # store_url: each store, with its own table or prefix


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

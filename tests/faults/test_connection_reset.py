"""Connections reset under the store: 503 while it lasts, then the pool heals by itself.

The proxy answers with a TCP RST (SO_LINGER 0) the moment a command is sent, or drops
every open connection at once while they sit idle in the pool.
"""

from __future__ import annotations

import anyio
import httpx
import pytest

from asgi_sessions import tokens
from asgi_sessions.stores import create_store
from asgi_sessions.testing.app import build_app
from asgi_sessions.testing.clock import FrozenClock
from faults.proxy import FaultProxy
from faults.traffic import Figures, Traffic, outage, report

pytestmark = pytest.mark.anyio
pytest_plugins = ["faults.stores"]


async def test_connection_reset_mid_command_is_503_and_the_pool_recovers_by_itself(
    networked: str, proxy: FaultProxy, proxied_url: str, clock: FrozenClock
) -> None:
    figures = Figures(f"{networked}: reset mid-command")
    await outage(
        proxied_url,
        clock,
        figures,
        fault=lambda: proxy.set("reset"),
        heal=lambda: proxy.set("pass"),
    )
    assert proxy.resets > 0
    assert figures.unavailable > 0
    assert figures.errors == 0
    assert figures.lost == 0


async def test_connections_dropped_while_idle_are_replaced_without_an_error(
    networked: str, proxy: FaultProxy, proxied_url: str, clock: FrozenClock
) -> None:
    figures = Figures(f"{networked}: idle connections reset")
    store = create_store(proxied_url, clock=clock)
    try:
        async with Traffic(build_app(store), figures) as traffic:
            await traffic.login()
            for _ in range(3):
                proxy.reset_all()
                await traffic.during(rounds=1)
            await traffic.count_lost()
    finally:
        report(figures)
        await store.close()
    assert figures.unavailable == 0
    assert figures.errors == 0
    assert figures.lost == 0


async def test_save_cut_off_midway_is_503_and_the_old_session_stays_whole(
    networked: str, proxy: FaultProxy, proxied_url: str, clock: FrozenClock
) -> None:
    store = create_store(proxied_url, clock=clock)
    app = build_app(store)
    transport = httpx.ASGITransport(app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.post("/set/cart", json=["apple"])).status_code == 200
            token = client.cookies["session"]
            before = await store.read(tokens.key_for(token))

            async def cut_off_when_saving() -> None:
                await app.state.reached.wait()  # read done, the update comes next
                proxy.set("reset")
                app.state.gate.set()

            async with anyio.create_task_group() as group:
                group.start_soon(cut_off_when_saving)
                response = await client.post("/held/write", json=["pear"])
            assert response.status_code == 503
            assert "set-cookie" not in response.headers
            proxy.set("pass")
            assert client.cookies["session"] == token
            assert (await client.get("/read")).json()["data"] == {"cart": ["apple"]}
        assert await store.read(tokens.key_for(token)) == before
    finally:
        await store.close()

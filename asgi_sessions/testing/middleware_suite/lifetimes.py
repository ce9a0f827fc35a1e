"""Idle and absolute timeouts, sliding expiry, and a session's own expiry."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from asgi_sessions.testing.clock import FrozenClock
from asgi_sessions.testing.middleware_suite._base import DAY, HOUR, MiddlewareSuiteBase
from asgi_sessions.testing.recording import RecordingStore


class Lifetimes(MiddlewareSuiteBase):
    """Expiry as the middleware's timeouts and ``set_expiry`` decide it."""

    async def test_idle_timeout_ends_an_unused_session(
        self, client: httpx.AsyncClient, store: RecordingStore, clock: FrozenClock
    ) -> None:
        await self.start(client, store)
        clock.advance(HOUR)
        assert (await client.get("/read")).json()["data"] == {}

    async def test_activity_slides_expiry_at_most_once_per_touch_interval(
        self, client: httpx.AsyncClient, store: RecordingStore, clock: FrozenClock
    ) -> None:
        await self.start(client, store)
        clock.advance(30)
        await client.get("/read")
        assert store.calls == ["read"]
        clock.advance(31)
        response = await client.get("/read")
        assert store.calls == ["read", "read", "extend_lifetime"]
        assert "Max-Age=3600" in response.headers["set-cookie"]
        clock.advance(HOUR - 1)
        assert (await client.get("/read")).json()["data"] == {"cart": ["apple"]}

    async def test_absolute_timeout_ends_even_an_active_session(
        self, client: httpx.AsyncClient, store: RecordingStore, clock: FrozenClock
    ) -> None:
        await self.start(client, store)
        for _ in range(4):
            clock.advance(3000)
            assert (await client.get("/read")).json()["data"] == {"cart": ["apple"]}
        clock.advance(2400)  # exactly four hours after creation
        assert (await client.get("/read")).json()["data"] == {}

    async def test_cookie_max_age_follows_server_expiry(
        self, client: httpx.AsyncClient, store: RecordingStore, clock: FrozenClock
    ) -> None:
        await self.start(client, store)
        for _ in range(4):
            clock.advance(3000)
            await client.post("/set/n", json=1)
        clock.advance(600)  # 3h30m after creation: the absolute timeout is 30 minutes away
        response = await client.post("/set/n", json=2)
        assert "Max-Age=1800" in response.headers["set-cookie"]

    async def test_own_expiry_wins_over_the_idle_timeout(
        self, client: httpx.AsyncClient, store: RecordingStore, clock: FrozenClock
    ) -> None:
        await self.start(client, store)
        response = await client.post("/expiry", json=3 * HOUR)
        assert f"Max-Age={int(3 * HOUR)}" in response.headers["set-cookie"]
        clock.advance(2 * HOUR)  # past the idle timeout of one hour
        assert (await client.get("/read")).json()["data"]["cart"] == ["apple"]

    async def test_own_expiry_never_outlives_the_absolute_timeout(
        self, client: httpx.AsyncClient, store: RecordingStore, clock: FrozenClock
    ) -> None:
        await self.start(client, store)
        response = await client.post("/expiry", json=7 * DAY)
        assert f"Max-Age={int(4 * HOUR)}" in response.headers["set-cookie"]
        for _ in range(4):
            clock.advance(3000)
            assert (await client.get("/read")).json()["data"]["cart"] == ["apple"]
        clock.advance(2400)  # four hours after creation, days before the own expiry
        assert (await client.get("/read")).json()["data"] == {}
        assert await store.count() == 0

    async def test_expiry_in_the_past_destroys_the_session(
        self, client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        await self.start(client, store)
        response = await client.post("/expiry", json=-1)
        assert "Max-Age=0" in response.headers["set-cookie"]
        assert await store.count() == 0

    async def test_expiry_zero_makes_a_browser_session_cookie(
        self, client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        await self.start(client, store)
        response = await client.post("/expiry", json=0)
        assert "Max-Age" not in response.headers["set-cookie"]
        assert await store.count() == 1

    @pytest.mark.parametrize("value", [float("nan"), float("inf"), 1e12, 1e300, "soon", True])
    async def test_an_expiry_that_cannot_be_stored_is_refused_at_the_call(
        self, client: httpx.AsyncClient, store: RecordingStore, value: Any
    ) -> None:
        await self.start(client, store)
        with pytest.raises((ValueError, TypeError), match="set_expiry"):
            await client.post(
                "/expiry", content=json.dumps(value), headers={"content-type": "application/json"}
            )
        assert store.calls == ["read"]
        assert (await client.get("/read")).json()["data"] == {"cart": ["apple"]}

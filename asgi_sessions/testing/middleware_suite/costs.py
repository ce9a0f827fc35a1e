"""What a request costs in store calls, and what it stores."""

from __future__ import annotations

import httpx

from asgi_sessions.testing.middleware_suite._base import (
    MiddlewareSuiteBase,
    key_of,
    token_of,
    use_token,
)
from asgi_sessions.testing.recording import RecordingStore


class Costs(MiddlewareSuiteBase):
    """Store round trips per kind of request; tokens at rest; strict mode."""

    async def test_request_without_cookie_costs_no_store_call(
        self, client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        for path in ("/untouched", "/read"):
            response = await client.get(path)
            assert response.status_code == 200
            assert "set-cookie" not in response.headers
        assert store.calls == []

    async def test_read_only_request_costs_one_round_trip(
        self, client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        await self.start(client, store)
        response = await client.get("/read")
        assert response.json()["data"] == {"cart": ["apple"]}
        assert store.calls == ["read"]
        assert "set-cookie" not in response.headers
        assert response.headers["vary"] == "Cookie"

    async def test_write_request_costs_a_read_and_an_update(
        self, client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        await self.start(client, store)
        await client.post("/set/cart", json=["apple", "pear"])
        assert store.calls == ["read", "update"]

    async def test_new_session_is_one_create_and_sets_a_safe_cookie(
        self, client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        response = await client.post("/set/cart", json=[])
        assert store.calls == ["create"]
        cookie = response.headers["set-cookie"]
        assert "httponly" in cookie and "samesite=lax" in cookie and "path=/;" in cookie
        assert "Max-Age=3600" in cookie
        assert response.headers["cache-control"] == "no-store"

    async def test_nested_mutation_is_saved(
        self, client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        await self.start(client, store)
        await client.post("/set/cart", json=["apple", {"qty": 2}])
        assert (await client.get("/read")).json()["data"]["cart"] == ["apple", {"qty": 2}]

    async def test_store_holds_the_digest_never_the_token(
        self, client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        token = await self.start(client, store)
        assert await store.ids() == [key_of(token)]
        async for record in store.all():
            assert token.encode() not in record.data
            assert token not in (record.key, record.user_id)

    async def test_unknown_cookie_is_ignored_and_never_adopted(
        self, client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        chosen = "A" * 43
        use_token(client, chosen)
        response = await client.post("/set/x", json=1)
        assert response.json()["data"] == {"x": 1}
        assert token_of(client) != chosen
        assert key_of(chosen) not in await store.ids()

    async def test_malformed_cookie_costs_no_store_call(
        self, client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        for bad in ("short", "x" * 300, "bad*chars" * 5, "%00" * 20):
            use_token(client, bad)
            assert (await client.get("/read")).status_code == 200
        assert store.calls == []

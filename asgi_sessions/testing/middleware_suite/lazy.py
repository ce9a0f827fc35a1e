"""``autoload=False``: the store is read only when the app asks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from asgi_sessions.exceptions import SessionNotLoaded
from asgi_sessions.testing.app import build_app
from asgi_sessions.testing.middleware_suite._base import MiddlewareSuiteBase, client_of, use_token
from asgi_sessions.testing.recording import RecordingStore


class LazyLoading(MiddlewareSuiteBase):
    """Requests that never load cost nothing; the rest behave as with autoload."""

    @pytest.fixture
    async def lazy_client(
        self, store: RecordingStore, options: dict[str, Any]
    ) -> AsyncIterator[httpx.AsyncClient]:
        async with client_of(build_app(store, autoload=False, **options)) as c:
            yield c

    async def test_lazy_request_that_never_loads_costs_no_store_call(
        self, client: httpx.AsyncClient, lazy_client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        use_token(lazy_client, await self.start(client, store))
        response = await lazy_client.get("/untouched")
        assert response.status_code == 200
        assert store.calls == []
        assert "set-cookie" not in response.headers
        assert "vary" not in response.headers  # its answer did not depend on the cookie

    async def test_lazy_session_is_read_once_when_loaded(
        self, client: httpx.AsyncClient, lazy_client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        use_token(lazy_client, await self.start(client, store))
        response = await lazy_client.get("/load-and-read")
        assert response.json()["data"] == {"cart": ["apple"]}
        assert store.calls == ["read"]
        assert response.headers["vary"] == "Cookie"

    async def test_lazy_session_used_before_loading_says_what_to_do(
        self, client: httpx.AsyncClient, lazy_client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        use_token(lazy_client, await self.start(client, store))
        with pytest.raises(SessionNotLoaded, match=r"await request.session.load\(\)"):
            await lazy_client.get("/read")
        assert store.calls == []

    async def test_lazy_new_session_is_written_and_read_back(
        self, lazy_client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        await lazy_client.post("/set/cart", json=["pear"])  # no cookie: nothing to load
        assert (await lazy_client.get("/load-and-read")).json()["data"] == {"cart": ["pear"]}
        assert store.calls == ["create", "read"]

    async def test_lazy_store_down_hurts_only_requests_that_load(
        self, client: httpx.AsyncClient, lazy_client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        use_token(lazy_client, await self.start(client, store))
        store.fail()
        assert (await lazy_client.get("/untouched")).status_code == 200
        response = await lazy_client.get("/load-and-read")
        assert response.status_code == 503
        assert "set-cookie" not in response.headers

    async def test_lazy_session_with_a_malformed_cookie_is_usable_at_once(
        self, lazy_client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        use_token(lazy_client, "not a token")  # names no record: nothing to load
        response = await lazy_client.post("/set/cart", json=["pear"])
        assert response.json()["data"] == {"cart": ["pear"]}
        assert store.calls == ["create"]
        assert "session=" in response.headers["set-cookie"]

    async def test_lazy_session_with_a_cookie_refuses_every_use_before_loading(
        self, client: httpx.AsyncClient, lazy_client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        use_token(lazy_client, await self.start(client, store))
        for path, body in (("/set/cart", ["pear"]), ("/user", "ada"), ("/login/ada", None)):
            with pytest.raises(SessionNotLoaded):
                await lazy_client.post(path, json=body)
        assert store.calls == []

"""Login, logout and regenerate: what each leaves in the store and tells the client."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette

from asgi_sessions.testing.middleware_suite._base import (
    MiddlewareSuiteBase,
    client_of,
    key_of,
    live_token_in,
    token_of,
    use_token,
)
from asgi_sessions.testing.recording import RecordingStore


class LoginAndLogout(MiddlewareSuiteBase):
    """regenerate() at login, destroy() at logout, and "log out everywhere"."""

    async def test_login_regenerates_the_id_and_keeps_the_data(
        self, client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        old = await self.start(client, store)
        response = await client.post("/login/alice")
        assert response.json() == {"data": {"cart": ["apple"]}, "user_id": "alice"}
        new = token_of(client)
        assert new is not None and new != old
        assert await store.read(key_of(old)) is None
        [record] = await store.user_sessions("alice")
        assert record.key == key_of(new)
        assert record.created_at == (await store.user_sessions("alice"))[0].created_at

    async def test_regenerate_retires_the_old_record_before_creating_the_new_one(
        self, client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        await self.start(client, store)
        await client.post("/login/alice")
        assert store.calls == ["read", "destroy", "create"]

    async def test_logout_destroys_and_the_old_cookie_reads_nothing(
        self, client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        old = await self.start(client, store)
        response = await client.post("/logout")
        assert "Max-Age=0" in response.headers["set-cookie"]
        assert await store.count() == 0
        use_token(client, old)
        replay = await client.get("/read")
        assert replay.json()["data"] == {}
        assert await store.count() == 0

    async def test_logout_is_kept_when_the_app_then_answers_500(
        self, client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        old = await self.start(client, store)
        response = await client.post("/logout-then-fail")
        assert response.status_code == 500
        assert "Max-Age=0" in response.headers["set-cookie"]
        assert await store.read(key_of(old)) is None
        assert await store.count() == 0

    async def test_regenerate_is_kept_on_a_500_but_the_data_changes_are_not(
        self, client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        old = await self.start(client, store)
        response = await client.post("/login-then-fail")
        assert response.status_code == 500
        new = live_token_in(response)
        assert new is not None and new != old
        assert await store.read(key_of(old)) is None
        use_token(client, new)
        assert (await client.get("/read")).json()["data"] == {"cart": ["apple"]}

    async def test_logout_everywhere_keeps_only_the_current_session(
        self, app: Starlette, store: RecordingStore
    ) -> None:
        clients = [client_of(app) for _ in range(3)]
        for client in clients:
            await client.post("/login/bob")
        keep = key_of(token_of(clients[0]) or "")
        assert await store.destroy_user_sessions("bob", keep=keep) == 2
        users = [(await c.get("/read")).json()["user_id"] for c in clients]
        assert users == ["bob", None, None]
        for client in clients:
            await client.aclose()

    async def test_data_set_after_destroy_starts_a_new_session(
        self, client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        old = await self.start(client, store)
        response = await client.post("/logout", params={"flash": "Logged out"})
        new = live_token_in(response)
        assert new is not None and new != old
        assert await store.read(key_of(old)) is None
        assert (await client.get("/flashes")).json() == [["info", "Logged out"]]

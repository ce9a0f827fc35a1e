"""Login, logout and regenerate: what each leaves in the store and tells the client."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from asgi_sessions.testing.middleware_suite._base import (
    MiddlewareSuiteBase,
    client_of,
    key_of,
    live_token_in,
    token_of,
    use_token,
)
from asgi_sessions.testing.recording import Hold, RecordingStore

REGENERATE_CUTS: dict[str, tuple[str, bool, bool]] = {
    "during-retire-before-the-store-ran-it": ("destroy", False, True),
    "during-retire-after-the-store-ran-it": ("destroy", True, False),
    "between-retire-and-create": ("create", False, False),
}
"""Where a regenerate is cancelled: the store call it is held at, whether it is held after
the store ran it, and whether the old session is still live afterwards."""


async def cancelled_at(
    held: Hold, request: Callable[[], Awaitable[httpx.Response]]
) -> list[httpx.Response]:
    """Send ``request`` and cancel it once it reaches the ``held`` store call, as a server
    does when the client goes away; the responses it got (none if it ended cancelled)."""
    responses: list[httpx.Response] = []
    async with anyio.create_task_group() as group:

        async def send() -> None:
            responses.append(await request())
            group.cancel_scope.cancel()  # it finished without reaching the held call

        group.start_soon(send)
        await held.reached.wait()
        group.cancel_scope.cancel()
    assert held.reached.is_set(), f"the request never called {held.name}()"
    return responses


async def keys_of(store: RecordingStore, user_id: str) -> set[str]:
    """The keys of the user's live sessions."""
    return {record.key for record in await store.user_sessions(user_id)}


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

    @pytest.mark.parametrize("cut", REGENERATE_CUTS)
    async def test_a_login_cancelled_midway_never_leaves_a_second_live_session(
        self, client: httpx.AsyncClient, store: RecordingStore, app: Starlette, cut: str
    ) -> None:
        """A login (regenerate) whose request is cancelled, as when the client goes away:
        before the old record is retired, the session stays as it was; after, the user is
        logged out of it, and the successor never comes to life. The user's other sessions
        are untouched, nothing answers 500, and the next login works."""
        async with client_of(app) as laptop:
            assert (await laptop.post("/login/alice")).status_code == 200
        old = await self.login_alice(client, store)
        before = await keys_of(store, "alice")
        name, after, survives = REGENERATE_CUTS[cut]
        held = store.hold(name, after=after)
        async with client_of(app) as leaving:
            use_token(leaving, old)
            assert await cancelled_at(held, lambda: leaving.post("/login/alice")) == []
        replay = await client.get("/read")
        assert replay.status_code == 200
        if survives:
            assert replay.json() == {"data": {"cart": ["apple"]}, "user_id": "alice"}
            assert await keys_of(store, "alice") == before
        else:
            assert replay.json() == {"data": {}, "user_id": None}
            assert await keys_of(store, "alice") == before - {key_of(old)}
        use_token(client, old)
        assert (await client.post("/login/alice")).status_code == 200
        new = token_of(client)
        assert new is not None and new != old
        assert await keys_of(store, "alice") == before - {key_of(old)} | {key_of(new)}

    async def test_a_login_whose_create_fails_after_the_retire_logs_out_with_a_503(
        self, client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        old = await self.login_alice(client, store)
        store.fail("create")
        response = await client.post("/login/alice")
        store.heal()
        assert response.status_code == 503
        assert live_token_in(response) is None
        assert store.calls == ["read", "destroy", "create"]
        use_token(client, old)
        assert (await client.get("/read")).json() == {"data": {}, "user_id": None}
        assert await store.user_sessions("alice") == []

"""``max_sessions_per_user``: a login over the limit ends the oldest session, or is
refused with a message the app can show; concurrent logins leave exactly the limit."""

from __future__ import annotations

from typing import Any

import anyio
import httpx

from asgi_sessions.testing.app import build_app
from asgi_sessions.testing.middleware_suite._base import MiddlewareSuiteBase, client_of, key_of
from asgi_sessions.testing.recording import RecordingStore

LIMIT = 3


class SessionLimits(MiddlewareSuiteBase):
    """What a login does when the user already has ``max_sessions_per_user`` sessions."""

    @staticmethod
    async def log_in(client: httpx.AsyncClient, user: str = "alice") -> httpx.Response:
        return await client.post(f"/login/{user}")

    async def test_a_login_over_the_limit_ends_the_oldest_session(
        self, store: RecordingStore, options: dict[str, Any], clock: Any
    ) -> None:
        app = build_app(store, **options, max_sessions_per_user=LIMIT)
        clients = [client_of(app) for _ in range(LIMIT + 1)]
        for client in clients:
            clock.advance(1)  # one second apart: the first is the oldest
            assert (await self.log_in(client)).status_code == 200
        assert (await clients[0].get("/read")).json()["user_id"] is None
        for client in clients[1:]:
            assert (await client.get("/read")).json()["user_id"] == "alice"
        assert len(await store.user_sessions("alice")) == LIMIT
        for client in clients:
            await client.aclose()

    async def test_a_refused_login_is_a_409_and_leaves_the_session_anonymous(
        self, store: RecordingStore, options: dict[str, Any]
    ) -> None:
        app = build_app(store, **options, max_sessions_per_user=LIMIT, session_limit="refuse")
        clients = [client_of(app) for _ in range(LIMIT + 1)]
        for client in clients[:LIMIT]:
            assert (await self.log_in(client)).status_code == 200
        refused = await self.log_in(clients[LIMIT])
        assert refused.status_code == 409
        assert "max_sessions_per_user=3" in refused.text
        assert (await clients[LIMIT].get("/read")).json()["user_id"] is None
        assert len(await store.user_sessions("alice")) == LIMIT
        for client in clients:
            await client.aclose()

    async def test_an_app_that_saves_at_login_turns_a_refusal_into_its_own_answer(
        self, store: RecordingStore, options: dict[str, Any]
    ) -> None:
        app = build_app(store, **options, max_sessions_per_user=1, session_limit="refuse")
        async with client_of(app) as first, client_of(app) as second:
            await first.post("/set/cart", json=["apple"])
            assert (await first.post("/login-or-explain/alice")).json()["refused"] is False
            await second.post("/set/cart", json=["pear"])
            answer = await second.post("/login-or-explain/alice")
            assert answer.status_code == 200
            assert answer.json() == {"refused": True, "user_id": None}
            shown = (await second.get("/read")).json()
            assert shown == {"data": {"cart": ["pear"]}, "user_id": None}

    async def test_twenty_concurrent_logins_leave_exactly_the_limit(
        self, store: RecordingStore, options: dict[str, Any]
    ) -> None:
        app = build_app(store, **options, max_sessions_per_user=LIMIT)
        clients = [client_of(app) for _ in range(20)]
        for client in clients:
            await client.post("/set/cart", json=["apple"])
        async with anyio.create_task_group() as group:
            for client in clients:
                group.start_soon(self.log_in, client)
        live = await store.user_sessions("alice")
        assert len(live) == LIMIT
        logged_in = [
            c
            for c in clients
            if key_of(c.cookies.get("session") or "") in {record.key for record in live}
        ]
        assert len(logged_in) == LIMIT
        for client in clients:
            await client.aclose()

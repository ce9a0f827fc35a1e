"""Requests of one session that overlap, in one worker and across two.

Each race holds one request after it loaded the session, does something else
meanwhile (a logout, a revoke, an expiry, a write from another worker), then lets
the held request finish through each path a request can take.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from asgi_sessions.testing.clock import FrozenClock
from asgi_sessions.testing.middleware_suite._base import (
    HOUR,
    MiddlewareSuiteBase,
    client_of,
    key_of,
    live_token_in,
    use_token,
)
from asgi_sessions.testing.recording import RecordingStore
from asgi_sessions.testing.store_suite.support import concurrently

Ending = Callable[[httpx.AsyncClient, RecordingStore, FrozenClock], Awaitable[Any]]


async def logout(client: httpx.AsyncClient, store: RecordingStore, clock: FrozenClock) -> None:
    assert (await client.post("/logout")).status_code == 200


async def revoke(client: httpx.AsyncClient, store: RecordingStore, clock: FrozenClock) -> None:
    assert await store.destroy_user_sessions("alice") == 1


async def expire(client: httpx.AsyncClient, store: RecordingStore, clock: FrozenClock) -> None:
    clock.advance(HOUR)


ENDINGS: dict[str, Ending] = {"logout": logout, "revoke": revoke, "expiry": expire}

HELD_PATHS: dict[str, Any] = {
    "read": None,
    "write": ["zombie"],
    "regenerate": None,
    "login": "alice",
    "set-expiry": 7200,
    "user-change": "mallory",
    "flash": "still here?",
    "reload": None,
}
"""Every way a held request can finish, with the body it sends."""


class Concurrency(MiddlewareSuiteBase):
    """Nothing that ended comes back; concurrent writes merge; a healthy store is never
    reported as down."""

    @pytest.mark.parametrize("path", HELD_PATHS)
    @pytest.mark.parametrize("ending", ENDINGS)
    async def test_an_ended_session_never_comes_back_through_a_held_request(
        self,
        client: httpx.AsyncClient,
        store: RecordingStore,
        clock: FrozenClock,
        app: Starlette,
        ending: str,
        path: str,
    ) -> None:
        token = await self.login_alice(client, store)
        clock.advance(61)  # past touch_interval, so the held request would slide
        async with self.held(app, client, path, HELD_PATHS[path]) as responses:
            await ENDINGS[ending](client, store, clock)
        [response] = responses
        assert response.status_code in (200, 503), response.text
        given = live_token_in(response)
        if given is not None:  # a fresh anonymous session at most, never alice's
            use_token(client, given)
            assert (await client.get("/read")).json()["user_id"] is None
        assert await store.user_sessions("alice") == []
        assert await store.user_sessions("mallory") == []
        assert await store.read(key_of(token)) is None
        assert all(record.user_id is None for record in [r async for r in store.all()])

    async def test_a_write_that_lost_its_session_is_not_acknowledged(
        self, client: httpx.AsyncClient, store: RecordingStore, app: Starlette
    ) -> None:
        await self.login_alice(client, store)
        async with self.held(app, client, "write", ["zombie"]) as responses:
            await client.post("/logout")
        assert responses[0].status_code == 503
        assert "ended" in responses[0].text or responses[0].headers["retry-after"]
        assert await store.count() == 0

    async def test_overlapping_requests_keep_both_keys(
        self, client: httpx.AsyncClient, store: RecordingStore, app: Starlette
    ) -> None:
        await self.start(client, store)
        async with self.held(app, client, "write", ["apple", "pear"]):
            await client.post("/set/theme", json="dark")
        data = (await client.get("/read")).json()["data"]
        assert data == {"cart": ["apple"], "held": ["apple", "pear"], "theme": "dark"}

    async def test_overlapping_requests_on_one_key_later_commit_wins(
        self, client: httpx.AsyncClient, store: RecordingStore, app: Starlette
    ) -> None:
        await self.start(client, store)
        async with self.held(app, client, "write", "slow"):
            await client.post("/set/held", json="fast")
        assert (await client.get("/read")).json()["data"]["held"] == "slow"

    async def test_regenerate_keeps_a_write_another_worker_made_meanwhile(
        self,
        client: httpx.AsyncClient,
        store: RecordingStore,
        app: Starlette,
        second_app: Starlette,
    ) -> None:
        token = await self.login_alice(client, store)
        async with self.held(app, client, "login", "alice") as responses, client_of(
            second_app
        ) as other:
            use_token(other, token)
            assert (await other.post("/set/theme", json="dark")).status_code == 200
        new = live_token_in(responses[0])
        assert new is not None
        use_token(client, new)
        data = (await client.get("/read")).json()["data"]
        assert data == {"cart": ["apple"], "theme": "dark"}

    async def test_a_write_that_loses_to_a_regenerate_is_not_acknowledged(
        self,
        client: httpx.AsyncClient,
        store: RecordingStore,
        app: Starlette,
        second_app: Starlette,
    ) -> None:
        token = await self.login_alice(client, store)
        async with self.held(app, client, "write", "lost?") as responses, client_of(
            second_app
        ) as other:
            use_token(other, token)
            regenerated = await other.post("/login/alice")
        assert regenerated.status_code == 200
        assert responses[0].status_code == 503  # not a 200 for a write that was dropped
        new = live_token_in(regenerated)
        assert new is not None
        use_token(client, new)
        assert "held" not in (await client.get("/read")).json()["data"]

    async def test_a_slide_never_undoes_a_concurrent_change_of_expiry(
        self,
        client: httpx.AsyncClient,
        store: RecordingStore,
        clock: FrozenClock,
        app: Starlette,
        second_app: Starlette,
    ) -> None:
        token = await self.start(client, store)
        clock.advance(61)
        async with self.held(app, client, "read") as responses, client_of(second_app) as other:
            use_token(other, token)
            assert (await other.post("/expiry", json=120)).status_code == 200
        assert responses[0].status_code == 200
        assert "set-cookie" not in responses[0].headers
        record = await store.read(key_of(token))
        assert record is not None
        assert record.expires_at == clock() + timedelta(seconds=120)

    async def writers(
        self, client: httpx.AsyncClient, store: RecordingStore, apps: list[Starlette]
    ) -> None:
        """As many clients as ``apps`` (in turn), each setting its own key of one session
        at once: every one is answered 200 and every key is kept."""
        token = await self.start(client, store)
        clients = [client_of(app) for app in apps]
        for other in clients:
            use_token(other, token)
        try:
            answers = await concurrently(
                *[(lambda c=c, n=n: c.post(f"/set/k{n}", json=n)) for n, c in enumerate(clients)]
            )
        finally:
            for other in clients:
                await other.aclose()
        assert [a.status_code for a in answers] == [200] * len(apps)
        data = (await client.get("/read")).json()["data"]
        assert data == {"cart": ["apple"], **{f"k{n}": n for n in range(len(apps))}}

    async def test_fifty_concurrent_writers_of_one_session_all_succeed_and_keep_their_keys(
        self, client: httpx.AsyncClient, store: RecordingStore, app: Starlette
    ) -> None:
        await self.writers(client, store, [app] * 50)

    async def test_concurrent_writers_in_two_workers_lose_nothing(
        self,
        client: httpx.AsyncClient,
        store: RecordingStore,
        app: Starlette,
        second_app: Starlette,
    ) -> None:
        await self.writers(client, store, [app, second_app] * 5)

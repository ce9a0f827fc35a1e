"""Flash messages and sessions that outlive the app process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from asgi_sessions.stores.base import Clock, SessionStore
from asgi_sessions.testing.app import build_app
from asgi_sessions.testing.clock import FrozenClock
from asgi_sessions.testing.middleware_suite._base import (
    NOT_PERSISTENT,
    MiddlewareSuiteBase,
    client_of,
    use_token,
)
from asgi_sessions.testing.recording import RecordingStore


class Restarts(MiddlewareSuiteBase):
    """What the next request, or the next process, reads back."""

    async def test_flash_messages_last_one_request(self, client: httpx.AsyncClient) -> None:
        await client.post("/flash", json="Saved!")
        assert (await client.get("/flashes")).json() == [["success", "Saved!"]]
        assert (await client.get("/flashes")).json() == []

    async def test_sessions_survive_an_app_restart(
        self,
        client: httpx.AsyncClient,
        store: RecordingStore,
        make_store: Callable[[Clock], SessionStore],
        clock: FrozenClock,
        options: dict[str, Any],
    ) -> None:
        if not store.persistent:
            pytest.skip(NOT_PERSISTENT)
        token = await self.start(client, store)
        await store.close()
        reopened = make_store(clock)
        async with client_of(build_app(reopened, **options)) as c:
            use_token(c, token)
            assert (await c.get("/read")).json()["data"] == {"cart": ["apple"]}
        await reopened.close()

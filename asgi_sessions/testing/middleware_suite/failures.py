"""Store failures, app failures and hostile values: a clear answer, nothing lost."""

from __future__ import annotations

import dataclasses
import json

import httpx
import pytest
from starlette.applications import Starlette

from asgi_sessions.exceptions import UnserializableValue
from asgi_sessions.testing.app import HOSTILE_VALUES
from asgi_sessions.testing.middleware_suite._base import (
    MiddlewareSuiteBase,
    key_of,
    token_of,
)
from asgi_sessions.testing.recording import RecordingStore


class Failures(MiddlewareSuiteBase):
    """503 for a store that is down, in every app shape; never a 503 for a healthy one."""

    async def test_server_error_saves_nothing(
        self, client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        await self.start(client, store)
        assert (await client.post("/fail")).status_code == 500
        assert store.calls == ["read"]
        assert "doomed" not in (await client.get("/read")).json()["data"]

    @pytest.mark.parametrize("path", ["/read", "/in-task-group"])
    async def test_store_down_is_a_503_and_the_cookie_survives(
        self, client: httpx.AsyncClient, store: RecordingStore, path: str
    ) -> None:
        token = await self.start(client, store)
        store.fail()
        response = await client.get(path)
        assert response.status_code == 503
        assert response.headers["retry-after"]
        assert "set-cookie" not in response.headers
        assert (await client.get("/untouched")).status_code == 200
        store.heal()
        assert token_of(client) == token
        assert (await client.get(path)).status_code == 200
        assert (await client.get("/read")).json()["data"] == {"cart": ["apple"]}

    async def test_failed_save_is_a_503_and_the_old_session_stays(
        self, client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        await self.start(client, store)
        store.fail("update")
        response = await client.post("/set/cart", json=["never"])
        assert response.status_code == 503
        assert "set-cookie" not in response.headers
        store.heal()
        assert (await client.get("/read")).json()["data"] == {"cart": ["apple"]}

    @pytest.mark.parametrize("name", HOSTILE_VALUES)
    async def test_data_json_would_change_is_refused_and_nothing_is_stored(
        self, client: httpx.AsyncClient, store: RecordingStore, name: str
    ) -> None:
        await self.start(client, store)
        with pytest.raises(UnserializableValue, match="at 'a"):
            await client.post(f"/set-hostile/{name}")
        assert store.calls == ["read"]
        assert (await client.get("/read")).json()["data"] == {"cart": ["apple"]}

    @pytest.mark.parametrize(
        "user_id",
        ["a\x00b", "\ud800", "x" * 1_000_000, "line\r\nbreak"],
        ids=["nul", "lone-surrogate", "1MB", "crlf"],
    )
    async def test_a_user_id_a_store_could_not_keep_is_refused_at_the_call(
        self, client: httpx.AsyncClient, store: RecordingStore, user_id: str
    ) -> None:
        await self.start(client, store)
        body = json.dumps(user_id).encode()
        with pytest.raises(ValueError, match="user_id"):
            await client.post("/user", content=body, headers={"content-type": "application/json"})
        assert store.calls == ["read"]
        assert (await client.get("/read")).json() == {"data": {"cart": ["apple"]}, "user_id": None}

    @pytest.mark.parametrize("user_id", ["{tag}:*?[x]", "'; DROP TABLE sessions; --", "用户"])
    async def test_user_ids_with_special_characters_round_trip(
        self, client: httpx.AsyncClient, store: RecordingStore, user_id: str
    ) -> None:
        await self.start(client, store)
        assert (await client.post("/user", json=user_id)).status_code == 200
        assert (await client.get("/read")).json()["user_id"] == user_id
        [record] = await store.user_sessions(user_id)
        assert record.key == key_of(token_of(client) or "")
        assert await store.destroy_user_sessions(user_id) == 1

    async def test_reload_treats_an_unreadable_record_as_no_session_like_load(
        self, client: httpx.AsyncClient, store: RecordingStore, app: Starlette
    ) -> None:
        token = await self.start(client, store)
        async with self.held(app, client, "reload") as responses:
            record = await store.read(key_of(token))
            assert record is not None
            tampered = dataclasses.replace(record, data=b"{not json")
            assert await store.update(tampered, expected_version=record.version)
        assert responses[0].status_code == 200
        assert responses[0].json() == {"data": {}, "user_id": None}
        assert (await client.get("/read")).json()["data"] == {}

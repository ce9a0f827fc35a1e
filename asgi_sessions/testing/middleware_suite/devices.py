"""Devices: what a session records of its client, and a user listing and ending theirs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
from starlette.applications import Starlette

from asgi_sessions.devices import device_id
from asgi_sessions.testing.app import build_app
from asgi_sessions.testing.clock import FrozenClock
from asgi_sessions.testing.middleware_suite._base import (
    MiddlewareSuiteBase,
    client_of,
    key_of,
    token_of,
)
from asgi_sessions.testing.recording import RecordingStore

AGENT = "Mozilla/5.0 (X11; Linux x86_64) SuiteBrowser/1.0"


def tracking(store: RecordingStore, options: dict[str, Any], **more: Any) -> Starlette:
    return build_app(store, **{**options, "track_devices": True, **more})


@asynccontextmanager
async def logged_in(
    app: Starlette, user: str, agent: str = AGENT
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``app``, sending ``agent``, that logged in as ``user``."""
    async with client_of(app) as client:
        client.headers["user-agent"] = agent
        assert (await client.post(f"/login/{user}")).status_code == 200
        yield client


class Devices(MiddlewareSuiteBase):
    """``track_devices``: recorded only with writes already made; devices, revoke_device
    and revoke_others act on the current user's sessions alone."""

    async def test_a_login_records_the_client_beside_the_data(
        self, store: RecordingStore, options: dict[str, Any], clock: FrozenClock
    ) -> None:
        async with logged_in(tracking(store, options), "alice") as client:
            [record] = await store.user_sessions("alice")
            assert record.key == key_of(token_of(client) or "")
        assert (record.user_agent, record.ip, record.last_seen_at) == (AGENT, "127.0.0.1", clock())
        assert AGENT.encode() not in record.data, "kept beside the data, not in it"

    async def test_untracked_sessions_record_nothing_of_the_client(
        self, store: RecordingStore, options: dict[str, Any]
    ) -> None:
        async with logged_in(build_app(store, **options), "alice"):
            [record] = await store.user_sessions("alice")
        assert (record.user_agent, record.ip, record.last_seen_at) == (None, None, None)

    async def test_the_address_is_truncated_or_left_out_as_configured(
        self, store: RecordingStore, options: dict[str, Any]
    ) -> None:
        kept = {}
        for mode in ("truncated", "none"):
            app = tracking(store, options, device_address=mode)
            async with logged_in(app, mode):
                [record] = await store.user_sessions(mode)
                kept[mode] = record.ip
        assert kept == {"truncated": "127.0.0.0", "none": None}

    async def test_last_seen_moves_with_the_slide_at_no_extra_round_trip(
        self, store: RecordingStore, options: dict[str, Any], clock: FrozenClock
    ) -> None:
        async with logged_in(tracking(store, options), "alice") as client:
            clock.advance(120)  # past touch_interval
            store.reset()
            assert (await client.get("/read")).status_code == 200
            assert store.calls == ["read", "extend_lifetime"]
            clock.advance(10)  # within touch_interval: nothing written, nothing moves
            await client.get("/read")
        [record] = await store.user_sessions("alice")
        assert record.last_seen_at == clock() - timedelta(seconds=10)

    async def test_devices_lists_the_users_sessions_with_this_one_marked_and_no_token(
        self, store: RecordingStore, options: dict[str, Any]
    ) -> None:
        app = tracking(store, options)
        async with (
            logged_in(app, "alice") as laptop,
            logged_in(app, "alice", "Phone/2.0") as phone,
            logged_in(app, "bob"),
        ):
            response = await laptop.get("/devices")
            listed = response.json()
            tokens = [token_of(laptop), token_of(phone)]
        assert sorted((d["user_agent"], d["current"]) for d in listed) == [
            (AGENT, True),
            ("Phone/2.0", False),
        ]
        for token in tokens:
            assert token is not None
            assert token not in response.text and key_of(token) not in response.text

    async def test_revoke_device_ends_another_of_the_users_sessions_and_never_a_strangers(
        self, store: RecordingStore, options: dict[str, Any]
    ) -> None:
        app = tracking(store, options)
        async with (
            logged_in(app, "alice") as laptop,
            logged_in(app, "alice") as phone,
            logged_in(app, "bob") as stranger,
        ):
            phone_id = device_id(key_of(token_of(phone) or ""))
            bob_id = device_id(key_of(token_of(stranger) or ""))
            assert (await laptop.post(f"/devices/revoke/{bob_id}")).json() == {"revoked": False}
            assert (await stranger.get("/read")).json()["user_id"] == "bob"
            assert (await laptop.post(f"/devices/revoke/{phone_id}")).json() == {"revoked": True}
            assert (await phone.get("/read")).json()["user_id"] is None
            assert (await laptop.get("/read")).json()["user_id"] == "alice"
            assert (await laptop.post(f"/devices/revoke/{phone_id}")).json() == {"revoked": False}

    async def test_revoking_this_device_logs_it_out_at_commit(
        self, store: RecordingStore, options: dict[str, Any]
    ) -> None:
        async with logged_in(tracking(store, options), "alice") as laptop:
            own = device_id(key_of(token_of(laptop) or ""))
            response = await laptop.post(f"/devices/revoke/{own}")
            assert response.json() == {"revoked": True}
            assert "Max-Age=0" in response.headers["set-cookie"]
        assert await store.user_sessions("alice") == []

    async def test_revoke_others_keeps_only_this_session(
        self, store: RecordingStore, options: dict[str, Any]
    ) -> None:
        app = tracking(store, options)
        async with (
            logged_in(app, "alice") as laptop,
            logged_in(app, "alice"),
            logged_in(app, "alice"),
            logged_in(app, "bob"),
        ):
            assert (await laptop.post("/devices/revoke-others")).json() == {"revoked": 2}
            [kept] = await store.user_sessions("alice")
            assert kept.key == key_of(token_of(laptop) or "")
            assert len(await store.user_sessions("bob")) == 1

    async def test_a_device_revoked_while_its_request_is_held_is_never_written_back(
        self, store: RecordingStore, options: dict[str, Any]
    ) -> None:
        """The phone's request loaded its session, then the laptop revoked the phone: the
        phone's write must not bring it back."""
        app = tracking(store, options)
        async with (
            logged_in(app, "alice") as laptop,
            logged_in(app, "alice") as phone,
        ):
            phone_key = key_of(token_of(phone) or "")
            async with self.held(app, phone, "write", {"cart": ["pear"]}) as responses:
                revoked = await laptop.post(f"/devices/revoke/{device_id(phone_key)}")
                assert revoked.json() == {"revoked": True}
            assert responses[0].status_code == 503
            assert await store.read(phone_key) is None
            assert [r.key for r in await store.user_sessions("alice")] == [
                key_of(token_of(laptop) or "")
            ]

    async def test_anonymous_sessions_have_no_devices_and_revoke_nothing(
        self, store: RecordingStore, options: dict[str, Any]
    ) -> None:
        async with logged_in(tracking(store, options), "alice") as alice:
            alice_id = device_id(key_of(token_of(alice) or ""))
            async with client_of(tracking(store, options)) as anonymous:
                await anonymous.post("/set/cart", json=["apple"])
                assert (await anonymous.get("/devices")).json() == []
                revoke = await anonymous.post(f"/devices/revoke/{alice_id}")
                assert revoke.json() == {"revoked": False}
                assert (await anonymous.post("/devices/revoke-others")).json() == {"revoked": 0}
            assert (await alice.get("/read")).json()["user_id"] == "alice"

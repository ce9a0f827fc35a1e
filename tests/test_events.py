"""Session events: what each path of the commit reports, and that no callback can hurt
a request."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from asgi_sessions import revoke_user_sessions
from asgi_sessions.events import SessionEvent, SessionEvents
from asgi_sessions.stores.memory import MemoryStore
from asgi_sessions.stores.redis import RedisStore
from asgi_sessions.testing import FrozenClock
from asgi_sessions.testing.app import build_app
from asgi_sessions.tokens import key_for

pytestmark = pytest.mark.anyio


class Heard:
    """Every event, in order, as the app's callbacks heard them."""

    def __init__(self) -> None:
        self.events: list[SessionEvent] = []
        self.bus = SessionEvents()
        self.bus.subscribe(self.hear)

    async def hear(self, event: SessionEvent) -> None:
        self.events.append(event)

    def kinds(self) -> list[str]:
        kinds: list[str] = [event.kind for event in self.events]
        self.events.clear()
        return kinds


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def heard() -> Heard:
    return Heard()


@pytest.fixture
def store(clock: FrozenClock) -> MemoryStore:
    return MemoryStore(clock=clock)


def app_of(store: Any, heard: Heard, **options: Any) -> Starlette:
    return build_app(store, events=heard.bus, track_devices=True, **options)


@pytest.fixture
async def client(store: MemoryStore, heard: Heard) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app_of(store, heard))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


def token_of(client: httpx.AsyncClient) -> str:
    token = client.cookies.get("session")
    assert token is not None
    return token


async def test_create_login_regenerate_and_logout_each_say_so(
    client: httpx.AsyncClient, heard: Heard
) -> None:
    await client.post("/set/cart", json=["apple"])
    [created] = heard.events
    assert heard.kinds() == ["created"]
    assert created.user_id is None and created.key_prefix == key_for(token_of(client))[:12]

    client.headers["user-agent"] = "Phone/1.0"
    await client.post("/login/alice")
    _, login = heard.events
    assert heard.kinds() == ["regenerated", "login"]
    assert (login.user_id, login.reason) == ("alice", "user attached")
    assert login.key_prefix == key_for(token_of(client))[:12]
    assert login.request.url.path == "/login/alice"
    assert login.device == "Phone/1.0 from 127.0.0.1"

    await client.post("/logout")
    [destroyed] = heard.events
    assert heard.kinds() == ["destroyed"]
    assert (destroyed.user_id, destroyed.reason) == ("alice", "logout")


async def test_no_event_carries_the_token(client: httpx.AsyncClient, heard: Heard) -> None:
    await client.post("/login/alice")
    token = token_of(client)
    for event in heard.events:
        assert token not in repr(event) and key_for(token) not in repr(event)


async def test_a_read_or_an_unchanged_write_reports_nothing(
    client: httpx.AsyncClient, heard: Heard
) -> None:
    await client.post("/set/cart", json=["apple"])
    heard.kinds()
    await client.get("/read")
    await client.post("/set/cart", json=["apple"])
    await client.post("/set/cart", json=["pear"])
    assert heard.kinds() == []


async def test_a_cookie_whose_session_expired_is_reported_when_it_comes_back(
    client: httpx.AsyncClient, heard: Heard, clock: FrozenClock
) -> None:
    await client.post("/login/alice")
    await client.post("/expiry", json=30)
    heard.kinds()
    key = key_for(token_of(client))
    clock.advance(31)
    await client.get("/read")
    [expired] = heard.events
    assert heard.kinds() == ["expired"]
    assert expired.key_prefix == key[:12] and "no live session" in expired.reason


async def test_revoking_devices_reports_each_revoked_session(
    store: MemoryStore, heard: Heard
) -> None:
    app = app_of(store, heard)
    clients = [
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t")
        for _ in range(3)
    ]
    for c in clients:
        await c.post("/login/alice")
    heard.kinds()
    devices = (await clients[0].get("/devices")).json()
    other = next(d["id"] for d in devices if not d["current"])
    await clients[0].post(f"/devices/revoke/{other}")
    [one] = heard.events
    assert heard.kinds() == ["revoked"]
    assert (one.user_id, one.reason) == ("alice", "by the user")
    await clients[0].post("/devices/revoke-others")
    assert heard.kinds() == ["revoked"]
    for c in clients:
        await c.aclose()


async def test_a_store_that_is_down_is_reported_once_per_request(heard: Heard) -> None:
    down = RedisStore("redis://127.0.0.1:1/0", connect_timeout=0.2, socket_timeout=0.2)
    transport = httpx.ASGITransport(app_of(down, heard))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        c.cookies.set("session", "a" * 43)
        response = await c.get("/read")
    assert response.status_code == 503
    [event] = heard.events
    assert event.kind == "unavailable" and "127.0.0.1:1" in event.reason


async def test_a_failing_callback_is_logged_and_the_request_and_other_callbacks_go_on(
    store: MemoryStore, caplog: pytest.LogCaptureFixture
) -> None:
    events, later = SessionEvents(), []

    @events.on("created")
    async def broken(event: SessionEvent) -> None:
        raise RuntimeError("mail server down")

    @events.on("created")
    async def audit(event: SessionEvent) -> None:
        later.append(event.kind)

    transport = httpx.ASGITransport(build_app(store, events=events))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        with caplog.at_level(logging.ERROR, logger="asgi_sessions"):
            response = await c.post("/set/cart", json=["apple"])
    assert response.status_code == 200
    assert later == ["created"]
    assert "broken failed on created" in caplog.text and "mail server down" in caplog.text


async def test_callbacks_run_after_the_response_has_been_sent(
    store: MemoryStore, heard: Heard
) -> None:
    sent: list[str] = []
    seen_by_callback: list[list[str]] = []

    async def hear(event: SessionEvent) -> None:
        seen_by_callback.append(list(sent))

    heard.bus.subscribe(hear, "created")
    app = app_of(store, heard)

    async def recording(scope: Any, receive: Any, send: Any) -> None:
        async def send_and_note(message: Any) -> None:
            sent.append(message["type"])
            await send(message)

        await app(scope, receive, send_and_note)

    transport = httpx.ASGITransport(recording)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        await c.post("/set/cart", json=["apple"])
    assert seen_by_callback == [["http.response.start", "http.response.body"]]


def test_an_unknown_kind_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown session event logn"):
        SessionEvents().subscribe(Heard().hear, "logn")  # type: ignore[arg-type]


async def test_an_operators_revoke_ends_the_users_sessions_and_says_why(
    store: MemoryStore, heard: Heard
) -> None:
    app = app_of(store, heard)
    transport = httpx.ASGITransport(app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://t") as one,
        httpx.AsyncClient(transport=transport, base_url="http://t") as two,
    ):
        await one.post("/login/alice")
        await two.post("/login/alice")
        heard.kinds()
        kept = key_for(token_of(two))
        revoked = await revoke_user_sessions(app, "alice", keep=kept, reason="password reset")
        assert revoked == 1
        [event] = heard.events
        assert (event.kind, event.user_id, event.reason) == ("revoked", "alice", "password reset")
        assert event.key_prefix == key_for(token_of(one))[:12] and event.request is None
        assert (await one.get("/read")).json()["user_id"] is None
        assert (await two.get("/read")).json()["user_id"] == "alice"


async def test_a_session_ended_by_the_limit_is_reported_revoked(
    store: MemoryStore, heard: Heard, clock: FrozenClock
) -> None:
    app = build_app(store, events=heard.bus, max_sessions_per_user=1)
    transport = httpx.ASGITransport(app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://t") as first,
        httpx.AsyncClient(transport=transport, base_url="http://t") as second,
    ):
        await first.post("/login/alice")
        heard.kinds()
        clock.advance(1)
        await second.post("/login/alice")
        evicted = next(event for event in heard.events if event.kind == "revoked")
        assert (evicted.user_id, evicted.reason) == ("alice", "by the session limit")
        assert evicted.key_prefix == key_for(token_of(first))[:12]
        assert sorted(heard.kinds()) == ["created", "login", "revoked"]

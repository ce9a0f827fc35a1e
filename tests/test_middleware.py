"""Middleware behaviour that does not depend on the store: cookie options, headers,
configuration checks, size limits and WebSockets. Store-dependent rules live in
the conformance suites."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

from asgi_sessions import (
    InsecureConfiguration,
    Session,
    SessionMiddleware,
    SessionTooLarge,
    UnserializableValue,
    create_session,
)
from asgi_sessions.cookies import CookiePolicy
from asgi_sessions.stores import MemoryStore
from asgi_sessions.testing.app import build_app
from asgi_sessions.testing.clock import FrozenClock
from asgi_sessions.testing.recording import RecordingStore

pytestmark = pytest.mark.anyio


@pytest.fixture
def store(clock: FrozenClock) -> MemoryStore:
    return MemoryStore(clock=clock)


async def post(app: Starlette, path: str, json: Any = None, **kw: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        return await client.post(path, json=json, **kw)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, "session=TOKEN; path=/; Max-Age=60; httponly; samesite=lax"),
        ({"https_only": True}, "session=TOKEN; path=/; Max-Age=60; httponly; samesite=lax; secure"),
        ({"session_cookie": "sid", "path": "/app"}, "sid=TOKEN; path=/app; Max-Age=60; httponly"),
        ({"same_site": "strict"}, "samesite=strict"),
        ({"same_site": "none", "https_only": True}, "samesite=none; secure"),
        ({"domain": "example.com"}, "; domain=example.com"),
        ({"host_prefix": True, "https_only": True}, "__Host-session=TOKEN; path=/;"),
        ({"partitioned": True, "https_only": True}, "; secure; partitioned"),
    ],
)
def test_cookie_header_for_each_option(
    store: MemoryStore, options: dict[str, Any], expected: str
) -> None:
    middleware = SessionMiddleware(PlainTextResponse("x"), store=store, **options)
    assert expected in middleware.cookie.header("TOKEN", 60)


def test_expired_cookie_header_deletes_the_cookie() -> None:
    header = CookiePolicy().header(None, None)
    assert header.startswith("session=null; path=/; expires=Thu, 01 Jan 1970 00:00:00 GMT")
    assert "Max-Age=0" in header


@pytest.mark.parametrize(
    "options",
    [
        {"same_site": "none"},
        {"partitioned": True},
        {"host_prefix": True},
        {"host_prefix": True, "https_only": True, "domain": "example.com"},
        {"host_prefix": True, "https_only": True, "path": "/app"},
    ],
)
def test_unsafe_cookie_options_are_refused(store: MemoryStore, options: dict[str, Any]) -> None:
    with pytest.raises(InsecureConfiguration, match=r"https_only=True|path='/'"):
        SessionMiddleware(PlainTextResponse("x"), store=store, **options)


def test_production_without_https_only_is_refused(
    store: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASGI_SESSIONS_ENV", "production")
    with pytest.raises(InsecureConfiguration, match="pass https_only=True"):
        SessionMiddleware(PlainTextResponse("x"), store=store)
    SessionMiddleware(PlainTextResponse("x"), store=store, https_only=True)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"idle_timeout": -1}, "idle_timeout must be zero or more"),
        ({"absolute_timeout": -5}, "absolute_timeout must be zero or more"),
        ({"idle_timeout": 7200, "absolute_timeout": 3600}, "longer than absolute_timeout"),
        ({"max_age": 60, "idle_timeout": 60}, "not both"),
    ],
)
def test_bad_timeouts_are_refused(
    store: MemoryStore, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        SessionMiddleware(PlainTextResponse("x"), store=store, **options)


def test_max_age_is_the_idle_timeout(store: MemoryStore) -> None:
    middleware = SessionMiddleware(PlainTextResponse("x"), store=store, max_age=600)
    assert middleware.backend.lifetime.idle_timeout == 600


async def test_vary_joins_the_apps_own_and_cache_control_is_kept(store: MemoryStore) -> None:
    async def page(request: Request) -> Response:
        request.session["seen"] = True
        return PlainTextResponse(
            "x", headers={"vary": "Accept-Encoding", "cache-control": "private, max-age=5"}
        )

    app = Starlette(routes=[Route("/", page, methods=["POST"])])
    app.add_middleware(SessionMiddleware, store=store)
    response = await post(app, "/")
    assert response.headers["vary"] == "Accept-Encoding, Cookie"
    assert response.headers["cache-control"] == "private, max-age=5"


async def test_oversized_session_is_refused_naming_the_limit(store: MemoryStore) -> None:
    app = build_app(store, max_size=1024)
    with pytest.raises(SessionTooLarge, match=r"over max_size=1 KB; store large objects"):
        await post(app, "/set/blob", "x" * 2000)
    assert await store.count() == 0


async def test_unserializable_value_names_its_key(store: MemoryStore) -> None:
    async def page(request: Request) -> Response:
        request.session["when"] = object()
        return PlainTextResponse("x")

    app = Starlette(routes=[Route("/", page, methods=["POST"])])
    app.add_middleware(SessionMiddleware, store=store)
    with pytest.raises(UnserializableValue, match=r"session\['when'\] cannot be stored as JSON"):
        await post(app, "/")
    assert issubclass(UnserializableValue, TypeError)


async def test_custom_token_generator_is_used_and_checked(store: MemoryStore) -> None:
    good = build_app(store, generate_token=lambda: "g" * 40)
    assert (await post(good, "/set/a", 1)).cookies["session"] == "g" * 40
    weak = build_app(store, generate_token=lambda: "1234")
    with pytest.raises(ValueError, match="at least 128 bits"):
        await post(weak, "/set/a", 1)


async def test_first_of_duplicate_cookies_is_used(store: MemoryStore) -> None:
    token = await create_session(store, {"who": "first"})
    other = await create_session(store, {"who": "second"})
    app = build_app(store)
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="https://t") as client:
        headers = {"cookie": f"session=not*valid; session={token}; session={other}"}
        response = await client.get("/read", headers=headers)
    assert response.json()["data"] == {"who": "first"}


async def test_session_id_outside_the_cookie_is_ignored(store: MemoryStore) -> None:
    token = await create_session(store, {"secret": 1})
    app = build_app(store)
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="https://t") as client:
        response = await client.get(
            f"/read?session={token}", headers={"x-session": token, "authorization": token}
        )
    assert response.json()["data"] == {}


def test_websocket_reads_the_session_and_saves_only_on_request(store: MemoryStore) -> None:
    async def chat(websocket: WebSocket) -> None:
        await websocket.accept()
        session: Session = websocket.session  # type: ignore[assignment]
        await websocket.send_json(dict(session))
        session["from_socket"] = await websocket.receive_text()
        if session["from_socket"] == "save":
            await session.save()
        await websocket.close()

    app = build_app(store)
    app.router.routes.append(WebSocketRoute("/ws", chat))
    client = TestClient(app)
    client.post("/set/name", json="ann")
    for word in ("discard", "save"):
        with client.websocket_connect("/ws") as ws:
            assert ws.receive_json()["name"] == "ann"
            ws.send_text(word)
        assert client.get("/read").json()["data"].get("from_socket") == (
            "save" if word == "save" else None
        )


async def test_regenerate_on_a_new_session_creates_one_record(store: MemoryStore) -> None:
    recording = RecordingStore(store)

    async def login(request: Request) -> Response:
        session: Session = request.session  # type: ignore[assignment]
        session.regenerate()
        session.user_id = "ann"
        await session.save()  # an early save, then the commit when the response starts
        return PlainTextResponse("in")

    app = Starlette(routes=[Route("/", login, methods=["POST"])])
    app.add_middleware(SessionMiddleware, store=recording)
    response = await post(app, "/")
    assert recording.calls == ["create"]
    assert [r.key for r in await store.user_sessions("ann")] == [
        hashlib.sha256(response.cookies["session"].encode()).hexdigest()
    ]

"""Middleware behaviour that does not depend on the store: cookie options, headers,
configuration checks, size limits and WebSockets. Store-dependent rules live in
the conformance suites."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient, WebSocketDenialResponse
from starlette.websockets import WebSocket

from asgi_sessions import (
    InsecureConfiguration,
    JSONSerializer,
    Serializer,
    Session,
    SessionConflict,
    SessionError,
    SessionMiddleware,
    SessionTooLarge,
    StoreUnavailable,
    UnserializableValue,
    create_session,
)
from asgi_sessions.cookies import CookiePolicy
from asgi_sessions.middleware import find_middleware
from asgi_sessions.stores import MemoryStore
from asgi_sessions.testing import login
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


@pytest.mark.parametrize("spelling", ["production", "Production", "PRODUCTION", " production\n"])
def test_production_without_https_only_is_refused_however_it_is_spelled(
    store: MemoryStore, monkeypatch: pytest.MonkeyPatch, spelling: str
) -> None:
    monkeypatch.setenv("ASGI_SESSIONS_ENV", spelling)
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
    assert middleware.settings.lifetime.idle_timeout == 600


async def test_a_starlette_app_with_a_long_max_age_keeps_working(store: MemoryStore) -> None:
    app = build_app(store, max_age=90 * 24 * 3600)
    response = await post(app, "/set/cart", [])
    assert response.status_code == 200
    assert f"Max-Age={90 * 24 * 3600}" in response.headers["set-cookie"]


def app_answering(store: MemoryStore, headers: dict[str, str]) -> Starlette:
    """An app whose one route writes to the session and answers with ``headers``."""

    async def page(request: Request) -> Response:
        request.session["seen"] = True
        return PlainTextResponse("x", headers=headers)

    app = Starlette(routes=[Route("/", page, methods=["POST"])])
    app.add_middleware(SessionMiddleware, store=store)
    return app


async def test_vary_joins_the_apps_own_and_a_private_cache_control_is_kept(
    store: MemoryStore,
) -> None:
    headers = {"vary": "Accept-Encoding", "cache-control": "private, max-age=5"}
    response = await post(app_answering(store, headers), "/")
    assert response.headers["vary"] == "Accept-Encoding, Cookie"
    assert response.headers["cache-control"] == "private, max-age=5"


@pytest.mark.parametrize(
    "headers",
    [
        {"cache-control": "public, max-age=3600"},
        {"cache-control": "s-maxage=600"},
        {"cache-control": "max-age=3600"},
        {"cache-control": "private, public, max-age=60"},
        {"cache-control": "no-cache"},
        {"cache-control": "private", "cdn-cache-control": "public, max-age=600"},
        {"surrogate-control": "max-age=600"},
    ],
)
async def test_a_response_setting_the_cookie_is_never_publicly_cacheable(
    store: MemoryStore, headers: dict[str, str]
) -> None:
    response = await post(app_answering(store, headers), "/")
    assert "session=" in response.headers["set-cookie"]
    cache_control = response.headers.get_list("cache-control")
    assert cache_control in (["no-store"], ["private"])
    assert "cdn-cache-control" not in response.headers
    assert "surrogate-control" not in response.headers


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
    with pytest.raises(UnserializableValue, match=r"at 'when' cannot be stored"):
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


def chat_app(store: RecordingStore) -> Starlette:
    """A websocket route that shows the session once connected."""

    async def chat(websocket: WebSocket) -> None:
        session: Session = websocket.session  # type: ignore[assignment]
        shown = dict(session)  # the store is read, or StoreUnavailable is raised, here
        await websocket.accept()
        await websocket.send_json(shown)
        await websocket.close()

    app = build_app(store)
    app.router.routes.append(WebSocketRoute("/ws", chat))
    return app


def test_websocket_handshake_is_refused_with_a_503_while_the_store_is_down(
    store: MemoryStore,
) -> None:
    recording = RecordingStore(store)
    client = TestClient(chat_app(recording))
    client.post("/set/name", json="ann")
    recording.fail()
    with pytest.raises(WebSocketDenialResponse) as denied, client.websocket_connect("/ws"):
        pass
    assert denied.value.status_code == 503
    assert denied.value.headers["retry-after"] == "5"
    recording.heal()
    with client.websocket_connect("/ws") as ws:
        assert ws.receive_json() == {"name": "ann"}


async def test_websocket_without_denial_responses_is_closed_with_try_again_later(
    store: MemoryStore,
) -> None:
    recording = RecordingStore(store)
    token = await create_session(recording, {"name": "ann"})
    recording.fail()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "path": "/ws",
        "raw_path": b"/ws",
        "root_path": "",
        "scheme": "ws",
        "query_string": b"",
        "headers": [(b"cookie", f"session={token}".encode())],
        "subprotocols": [],
        "extensions": {},
    }
    await chat_app(recording)(scope, receive, send)  # type: ignore[arg-type]  # never raises
    assert sent == [{"type": "websocket.close", "code": 1013}]


@pytest.mark.parametrize("shape", ["gather", "base-http-middleware", "task-group"])
async def test_store_down_is_a_503_in_every_app_shape(store: MemoryStore, shape: str) -> None:
    recording = RecordingStore(store)

    async def look(request: Request) -> None:
        dict(request.session)

    async def page(request: Request) -> Response:
        if shape == "gather":
            await asyncio.gather(look(request), look(request))
        elif shape == "task-group":
            async with anyio.create_task_group() as group:
                group.start_soon(look, request)
                group.start_soon(look, request)
        else:
            await look(request)
        return PlainTextResponse("x")

    async def passthrough(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        return response

    app = Starlette(routes=[Route("/", page)])
    if shape == "base-http-middleware":
        app.add_middleware(BaseHTTPMiddleware, dispatch=passthrough)
    app.add_middleware(SessionMiddleware, store=recording)
    token = await create_session(recording, {"a": 1})
    recording.fail()
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(
        transport=transport, base_url="https://t", cookies={"session": token}
    ) as client:
        response = await client.get("/")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"


async def test_a_503_is_logged_once_per_interval_without_the_token(
    store: MemoryStore, caplog: pytest.LogCaptureFixture
) -> None:
    recording = RecordingStore(store)
    app = build_app(recording)
    token = await create_session(recording, {"a": 1})
    recording.fail()
    caplog.set_level(logging.DEBUG, logger="asgi_sessions")
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(
        transport=transport, base_url="https://t", cookies={"session": token}
    ) as client:
        for _ in range(20):
            assert (await client.get("/read")).status_code == 503
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "injected fault: store is down" in warnings[0].getMessage()
    assert all(token not in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("call", ["read", "update"])
async def test_a_store_that_does_not_answer_within_its_timeout_is_a_503(
    store: MemoryStore, caplog: pytest.LogCaptureFixture, call: str
) -> None:
    recording = RecordingStore(store)
    recording.timeout = 0.05
    app = build_app(recording)
    token = await create_session(recording, {"cart": ["apple"]})
    held = recording.hold(call)
    cookies = {"session": token}
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t", cookies=cookies) as c:
        with anyio.fail_after(10):  # not a timing check: a missing deadline would hang
            response = await c.post("/set/cart", json=["pear"])
        assert held.reached.is_set()
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert "did not answer within 0.05 s" in caplog.text
        held.release()
        assert (await c.get("/read")).json()["data"] == {"cart": ["apple"]}


async def test_a_session_conflict_does_not_say_the_store_is_down() -> None:
    assert "unavailable" not in str(SessionConflict("x")).lower()
    assert issubclass(SessionConflict, SessionError)
    assert not issubclass(SessionConflict, StoreUnavailable)


def reverse_json() -> Serializer:
    """A custom serializer: JSON with its bytes reversed."""

    class Reversed(JSONSerializer):
        def dumps(self, data: Any) -> bytes:
            return super().dumps(data)[::-1]

        def loads(self, raw: bytes) -> dict[str, Any]:
            return super().loads(raw[::-1])

    return Reversed()


async def test_create_session_follows_the_apps_settings(store: MemoryStore) -> None:
    app = build_app(
        store, serializer=reverse_json(), generate_token=lambda: "g" * 40, max_size=100
    )
    token = await create_session(app, {"cart": [1]}, user_id=7)
    assert token == "g" * 40
    [record] = await store.user_sessions("7")
    assert record.data == b'{"cart":[1]}'[::-1]
    with pytest.raises(SessionTooLarge, match="max_size"):
        await create_session(app, {"blob": "x" * 200})


async def test_a_serializer_subclass_writes_its_own_bytes_when_data_changes(
    store: MemoryStore,
) -> None:
    app = build_app(store, serializer=reverse_json())
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        await client.post("/set/cart", json=["apple"])
        assert (await client.post("/set/cart", json=["pear"])).status_code == 200
        await client.get("/read")  # unchanged: nothing written
        assert (await client.get("/read")).json()["data"] == {"cart": ["pear"]}
    [record] = [r async for r in store.all()]
    assert record.data == b'{"cart":["pear"]}'[::-1]
    assert record.version == 2


async def test_login_helper_follows_the_apps_cookie_name_and_settings(store: MemoryStore) -> None:
    app = build_app(store, https_only=True, host_prefix=True, serializer=reverse_json())
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="https://t") as client:
        token = await login(client, app, user_id="ann", data={"cart": [1]})
        assert client.cookies["__Host-session"] == token
        response = await client.get("/read")
    assert response.json() == {"data": {"cart": [1]}, "user_id": "ann"}


def test_find_middleware_says_what_to_pass() -> None:
    with pytest.raises(ValueError, match="pass the app you added SessionMiddleware to"):
        find_middleware(Starlette())


async def test_a_session_kept_past_its_request_says_the_request_is_over(
    store: MemoryStore,
) -> None:
    kept: list[Any] = []

    async def keep(request: Request) -> Response:
        request.session["n"] = 1
        kept.append(request.session)
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/", keep)])
    app.add_middleware(SessionMiddleware, store=store)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://test"
    ) as client:
        assert (await client.get("/")).status_code == 200
    assert kept[0] == {"n": 1}, "the data stays readable"
    with pytest.raises(RuntimeError, match="its request is over"):
        await kept[0].save()

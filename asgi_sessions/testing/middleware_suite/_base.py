"""Fixtures and helpers every section of the middleware suite shares."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from asgi_sessions.stores.base import Clock, SessionStore
from asgi_sessions.testing.app import build_app
from asgi_sessions.testing.clock import FrozenClock
from asgi_sessions.testing.recording import RecordingStore

DAY = 24 * 3600.0
HOUR = 3600.0
NOT_PERSISTENT = "store does not keep records across instances"


def token_of(client: httpx.AsyncClient) -> str | None:
    """The session token the server last gave the client."""
    given = [c.value for c in client.cookies.jar if c.name == "session" and c.domain]
    if given:
        return given[-1]
    token: str | None = client.cookies.get("session")
    return token


def use_token(client: httpx.AsyncClient, token: str) -> None:
    """Make the client send ``token`` as its session cookie, like a replaying attacker."""
    client.cookies.clear()
    client.cookies.set("session", token)


def key_of(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def live_token_in(response: httpx.Response) -> str | None:
    """The session token a response hands the client, unless the cookie is a deletion."""
    header: str | None = response.headers.get("set-cookie")
    if header is None or "Max-Age=0" in header:
        return None
    return header.split(";", 1)[0].split("=", 1)[1]


def client_of(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver")


@pytest.mark.anyio
class MiddlewareSuiteBase:
    """The fixtures of ``MiddlewareConformance``; override ``make_store`` as for
    ``StoreConformance``."""

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    def make_store(self) -> Callable[[Clock], SessionStore]:
        raise NotImplementedError(
            "override the make_store fixture to return a factory of your store"
        )

    @pytest.fixture
    def clock(self) -> FrozenClock:
        return FrozenClock()

    @pytest.fixture
    async def store(
        self, make_store: Callable[[Clock], SessionStore], clock: FrozenClock
    ) -> AsyncIterator[RecordingStore]:
        recording = RecordingStore(make_store(clock))
        yield recording
        recording.heal()
        await recording.close()

    @pytest.fixture
    async def second_store(
        self,
        make_store: Callable[[Clock], SessionStore],
        clock: FrozenClock,
        store: RecordingStore,
    ) -> AsyncIterator[SessionStore]:
        """Another store object over the same records, as a second worker process has;
        the same object when the store keeps its records in the process."""
        if not store.persistent:
            yield store
            return
        other = make_store(clock)
        yield other
        await other.close()

    @pytest.fixture
    def options(self) -> dict[str, Any]:
        """SessionMiddleware options; the timeouts are short to make expiry visible."""
        return {"idle_timeout": HOUR, "absolute_timeout": 4 * HOUR, "touch_interval": 60}

    @pytest.fixture
    def app(self, store: RecordingStore, options: dict[str, Any]) -> Starlette:
        return build_app(store, **options)

    @pytest.fixture
    def second_app(self, second_store: SessionStore, options: dict[str, Any]) -> Starlette:
        """The same app in a second worker: its own middleware over ``second_store``."""
        return build_app(second_store, **options)

    @pytest.fixture
    async def client(self, app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
        async with client_of(app) as c:
            yield c

    async def start(self, client: httpx.AsyncClient, store: RecordingStore) -> str:
        """Give ``client`` a session holding ``cart: ["apple"]``; forget the calls so far."""
        response = await client.post("/set/cart", json=["apple"])
        assert response.status_code == 200
        token = token_of(client)
        assert token is not None
        store.reset()
        return token

    async def login_alice(self, client: httpx.AsyncClient, store: RecordingStore) -> str:
        """Give ``client`` a session of user alice holding ``cart: ["apple"]``; forget the
        calls so far."""
        await client.post("/set/cart", json=["apple"])
        await client.post("/login/alice")
        token = token_of(client)
        assert token is not None
        store.reset()
        return token

    @staticmethod
    @asynccontextmanager
    async def held(
        app: Starlette, client: httpx.AsyncClient, step: str, body: Any = None
    ) -> AsyncIterator[list[httpx.Response]]:
        """Send ``/held/{step}`` and hold it after it loaded the session; the block runs
        meanwhile, and on leaving it the request is released and finishes. Its response
        is in the yielded list afterwards."""
        responses: list[httpx.Response] = []
        token = token_of(client)
        request_client = client_of(app)
        if token is not None:
            use_token(request_client, token)

        async def send() -> None:
            async with request_client:
                kwargs = {} if body is None else {"json": body}
                responses.append(await request_client.post(f"/held/{step}", **kwargs))

        async with anyio.create_task_group() as group:
            group.start_soon(send)
            await app.state.reached.wait()
            yield responses
            app.state.gate.set()
        app.state.gate = anyio.Event()
        app.state.reached = anyio.Event()

"""test_dashboard.py: pip install 'asgi-server-sessions[testing]', then run pytest."""

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from asgi_sessions import Session, SessionMiddleware
from asgi_sessions.stores import MemoryStore
from asgi_sessions.testing import login


async def dashboard(request: Request) -> JSONResponse:
    """The route under test; in your tests, import your app instead."""
    session: Session = request.scope["session"]  # request.session, with its type
    if session.user_id is None:
        return JSONResponse({"error": "log in first"}, status_code=401)
    return JSONResponse({"user": session.user_id})


@pytest.fixture
def app() -> Starlette:
    app = Starlette(routes=[Route("/dashboard", dashboard)])
    app.add_middleware(SessionMiddleware, store=MemoryStore())
    return app


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.mark.anyio  # runs the async test and its async fixture on an event loop
async def test_dashboard(client: httpx.AsyncClient, app: Starlette) -> None:
    await login(client, app, user_id="ann")  # no login form; follows the app's settings
    assert (await client.get("/dashboard")).json() == {"user": "ann"}


@pytest.mark.anyio
async def test_dashboard_needs_a_login(client: httpx.AsyncClient) -> None:
    assert (await client.get("/dashboard")).status_code == 401

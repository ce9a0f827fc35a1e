"""A small Starlette app that exercises every session feature, for the test suites."""

from __future__ import annotations

from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from asgi_sessions.middleware import SessionMiddleware
from asgi_sessions.session import Session
from asgi_sessions.stores.base import SessionStore


def _session(request: Request) -> Session:
    session: Session = request.session  # type: ignore[assignment]
    return session


async def untouched(request: Request) -> Response:
    return PlainTextResponse("never looked at the session")


async def read(request: Request) -> Response:
    session = _session(request)
    return JSONResponse({"data": dict(session), "user_id": session.user_id})


async def load_and_read(request: Request) -> Response:
    """Read after an explicit load, as code written for ``autoload=False`` does."""
    await _session(request).load()
    return await read(request)


async def set_value(request: Request) -> Response:
    _session(request)[request.path_params["key"]] = await request.json()
    return await read(request)


async def delete_value(request: Request) -> Response:
    _session(request).pop(request.path_params["key"], None)
    return await read(request)


async def slow_set(request: Request) -> Response:
    """Set a key, then wait for the test to open the gate before answering."""
    _session(request)[request.path_params["key"]] = await request.json()
    request.app.state.reached.set()
    await request.app.state.gate.wait()
    return await read(request)


async def login(request: Request) -> Response:
    session = _session(request)
    session.regenerate()
    session.user_id = request.path_params["user"]
    return await read(request)


async def logout(request: Request) -> Response:
    _session(request).destroy()
    return PlainTextResponse("bye")


async def expiry(request: Request) -> Response:
    _session(request).set_expiry(await request.json())
    return await read(request)


async def fail(request: Request) -> Response:
    _session(request)["doomed"] = True
    return PlainTextResponse("boom", status_code=500)


async def flash(request: Request) -> Response:
    _session(request).flash(await request.json(), "success")
    return PlainTextResponse("flashed")


async def flashes(request: Request) -> Response:
    return JSONResponse(_session(request).pop_flashes())


def build_app(store: SessionStore, **options: Any) -> Starlette:
    """The test app over ``store``, with ``options`` passed to SessionMiddleware."""
    app = Starlette(
        routes=[
            Route("/untouched", untouched),
            Route("/read", read),
            Route("/load-and-read", load_and_read),
            Route("/set/{key}", set_value, methods=["POST"]),
            Route("/delete/{key}", delete_value, methods=["POST"]),
            Route("/slow-set/{key}", slow_set, methods=["POST"]),
            Route("/login/{user}", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/expiry", expiry, methods=["POST"]),
            Route("/fail", fail, methods=["POST"]),
            Route("/flash", flash, methods=["POST"]),
            Route("/flashes", flashes),
        ]
    )
    app.add_middleware(SessionMiddleware, store=store, **options)
    app.state.gate = anyio.Event()
    app.state.reached = anyio.Event()
    return app

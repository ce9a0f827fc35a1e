"""A small Starlette app that exercises every session feature, for the test suites.

Routes under ``/held/`` load the session, then wait for the test to open
``app.state.gate`` before doing their work: a request held mid-way, as a slowly sent
request body would hold it, while the test ends the session or writes to it.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from asgi_sessions.exceptions import SessionLimitReached
from asgi_sessions.middleware import SessionMiddleware
from asgi_sessions.session import Session
from asgi_sessions.stores.base import SessionStore

HOSTILE_VALUES: dict[str, Any] = {
    "int-and-str-keys": {"a": {1: "x", "1": "y"}},
    "none-key": {"a": {None: 1}},
    "nan": {"a": math.nan},
    "infinity": {"a": [math.inf]},
    "tuple": {"a": (1, 2)},
    "set": {"a": {1, 2}},
    "bytes": {"a": b"raw"},
    "lone-surrogate": {"a": "\ud800"},
}
"""Session values JSON would change or refuse, by name, for ``/set-hostile/{name}``."""


def _session(request: Request) -> Session:
    session: Session = request.session  # type: ignore[assignment]
    return session


def _shown(session: Session) -> Response:
    return JSONResponse({"data": dict(session), "user_id": session.user_id})


async def untouched(request: Request) -> Response:
    return PlainTextResponse("never looked at the session")


async def read(request: Request) -> Response:
    return _shown(_session(request))


async def load_and_read(request: Request) -> Response:
    """Read after an explicit load, as code written for ``autoload=False`` does."""
    await _session(request).load()
    return await read(request)


async def set_value(request: Request) -> Response:
    _session(request)[request.path_params["key"]] = await request.json()
    return await read(request)


async def set_hostile(request: Request) -> Response:
    _session(request).update(HOSTILE_VALUES[request.path_params["name"]])
    return PlainTextResponse("set")


async def delete_value(request: Request) -> Response:
    _session(request).pop(request.path_params["key"], None)
    return await read(request)


async def set_user(request: Request) -> Response:
    _session(request).user_id = await request.json()
    return await read(request)


async def login(request: Request) -> Response:
    session = _session(request)
    session.regenerate()
    session.user_id = request.path_params["user"]
    return await read(request)


async def logout(request: Request) -> Response:
    """Log out; with ``?flash=...``, leave a message, which starts a new session."""
    session = _session(request)
    session.destroy()
    if "flash" in request.query_params:
        session.flash(request.query_params["flash"])
    return PlainTextResponse("bye")


async def expiry(request: Request) -> Response:
    _session(request).set_expiry(await request.json())
    return await read(request)


async def fail(request: Request) -> Response:
    _session(request)["doomed"] = True
    return PlainTextResponse("boom", status_code=500)


async def logout_then_fail(request: Request) -> Response:
    _session(request).destroy()
    return PlainTextResponse("boom after logout", status_code=500)


async def login_then_fail(request: Request) -> Response:
    session = _session(request)
    session.regenerate()
    session["doomed"] = True
    return PlainTextResponse("boom after regenerate", status_code=500)


async def flash(request: Request) -> Response:
    _session(request).flash(await request.json(), "success")
    return PlainTextResponse("flashed")


async def flashes(request: Request) -> Response:
    return JSONResponse(_session(request).pop_flashes())


async def in_task_group(request: Request) -> Response:
    """Read the session inside an anyio task group: errors arrive in an ExceptionGroup."""
    found: dict[str, Any] = {}

    async def look() -> None:
        found.update(_session(request))

    async with anyio.create_task_group() as group:
        group.start_soon(look)
    return JSONResponse(found)


HeldStep = Callable[[Session, Any], Awaitable[None]]


async def _read(session: Session, body: Any) -> None:
    """Only read: the commit may slide the expiry."""


async def _write(session: Session, body: Any) -> None:
    session["held"] = body


async def _regenerate(session: Session, body: Any) -> None:
    session.regenerate()


async def _login(session: Session, body: Any) -> None:
    session.regenerate()
    session.user_id = body


async def _set_expiry(session: Session, body: Any) -> None:
    session.set_expiry(body)


async def _change_user(session: Session, body: Any) -> None:
    session.user_id = body


async def _flash(session: Session, body: Any) -> None:
    session.flash(body)


async def _reload(session: Session, body: Any) -> None:
    await session.reload()


HELD_STEPS: dict[str, HeldStep] = {
    "read": _read,
    "write": _write,
    "regenerate": _regenerate,
    "login": _login,
    "set-expiry": _set_expiry,
    "user-change": _change_user,
    "flash": _flash,
    "reload": _reload,
}
"""What a held request does once released, by name, for ``/held/{step}``."""


async def held(request: Request) -> Response:
    """Load the session, wait for the gate, then do one step and answer with the session."""
    session = _session(request)
    body = await request.json() if await request.body() else None
    request.app.state.reached.set()
    await request.app.state.gate.wait()
    await HELD_STEPS[request.path_params["step"]](session, body)
    return _shown(session)


async def login_or_explain(request: Request) -> Response:
    """Log in and save at once, turning a refused login into a message."""
    session = _session(request)
    session.regenerate()
    session.user_id = request.path_params["user"]
    try:
        await session.save()
    except SessionLimitReached:
        return JSONResponse({"refused": True, "user_id": session.user_id})
    return JSONResponse({"refused": False, "user_id": session.user_id})


async def devices(request: Request) -> Response:
    """The user's devices, as a "your devices" page would show them."""
    found = await _session(request).devices()
    return JSONResponse(
        [
            {
                "id": d.id,
                "current": d.current,
                "user_agent": d.user_agent,
                "ip": d.ip,
                "created_at": d.created_at.isoformat(),
                "last_seen_at": None if d.last_seen_at is None else d.last_seen_at.isoformat(),
            }
            for d in found
        ]
    )


async def revoke_device(request: Request) -> Response:
    revoked = await _session(request).revoke_device(request.path_params["id"])
    return JSONResponse({"revoked": revoked})


async def revoke_others(request: Request) -> Response:
    return JSONResponse({"revoked": await _session(request).revoke_others()})


def build_app(store: SessionStore, **options: Any) -> Starlette:
    """The test app over ``store``, with ``options`` passed to SessionMiddleware."""
    app = Starlette(
        routes=[
            Route("/untouched", untouched),
            Route("/read", read),
            Route("/load-and-read", load_and_read),
            Route("/set/{key}", set_value, methods=["POST"]),
            Route("/set-hostile/{name}", set_hostile, methods=["POST"]),
            Route("/delete/{key}", delete_value, methods=["POST"]),
            Route("/user", set_user, methods=["POST"]),
            Route("/login/{user}", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/expiry", expiry, methods=["POST"]),
            Route("/fail", fail, methods=["POST"]),
            Route("/logout-then-fail", logout_then_fail, methods=["POST"]),
            Route("/login-then-fail", login_then_fail, methods=["POST"]),
            Route("/flash", flash, methods=["POST"]),
            Route("/flashes", flashes),
            Route("/in-task-group", in_task_group),
            Route("/held/{step}", held, methods=["POST"]),
            Route("/login-or-explain/{user}", login_or_explain, methods=["POST"]),
            Route("/devices", devices),
            Route("/devices/revoke/{id}", revoke_device, methods=["POST"]),
            Route("/devices/revoke-others", revoke_others, methods=["POST"]),
        ]
    )
    app.add_middleware(SessionMiddleware, store=store, **options)
    app.state.gate = anyio.Event()
    app.state.reached = anyio.Event()
    return app

"""A small Starlette app that shows sessions at work: log in, count visits, see and sign
out your devices.

``asgi-sessions demo`` serves it with uvicorn. It has no passwords: whoever types a
name is that user, which is enough to watch sessions being made, listed and ended.
Pages are plain f-strings with every value passed through ``html.escape``.
"""

from __future__ import annotations

import html
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from asgi_sessions.middleware import SessionMiddleware
from asgi_sessions.session import Session
from asgi_sessions.stores.base import SessionStore

__all__ = ["build_demo"]

MAX_FORM_BYTES = 4096
"""Largest form body the demo reads; its forms hold a name or a device id."""

MAX_NAME_LENGTH = 64

_STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; max-width: 40rem; margin: 3rem auto;
       padding: 0 1rem; color: #1f2328; }
h1 { font-size: 1.6rem; } a { color: #0969da; }
.flash { padding: .5rem .8rem; border-radius: 6px; background: #ddf4ff; margin: .4rem 0; }
.flash.error { background: #ffebe9; }
input[type=text] { font: inherit; padding: .3rem .5rem; }
button { font: inherit; padding: .3rem .8rem; cursor: pointer; }
table { border-collapse: collapse; width: 100%; margin: 1rem 0; }
th, td { text-align: left; padding: .4rem; border-bottom: 1px solid #d0d7de; }
.muted { color: #656d76; font-size: .9rem; } .inline { display: inline; }
"""

Handler = Callable[[Request], Awaitable[Response]]


def _session(request: Request) -> Session:
    session: Session = request.session  # type: ignore[assignment]
    return session


def _page(title: str, body: str, session: Session) -> HTMLResponse:
    """A whole HTML page with pending flash messages; never cached, as it may be private."""
    flashes = "".join(
        f'<p class="flash {html.escape(category)}">{html.escape(str(message))}</p>'
        for category, message in session.pop_flashes()
    )
    document = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{flashes}{body}"
        f'<p class="muted">asgi_sessions demo: no passwords, any name logs in.</p>'
        f"</body></html>"
    )
    return HTMLResponse(document, headers={"Cache-Control": "no-store"})


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _see_other(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def _form_post(handler: Callable[[Request, dict[str, str]], Awaitable[Response]]) -> Handler:
    """Accept only a same-origin urlencoded form and hand its fields to ``handler``.

    Parsed here with ``urllib.parse`` so the demo needs no python-multipart. A POST
    whose Origin is another site is refused, on top of the SameSite=Lax cookie.
    """

    async def endpoint(request: Request) -> Response:
        origin = request.headers.get("origin")
        if origin is not None and urlsplit(origin).netloc != request.url.netloc:
            return PlainTextResponse("cross-site form refused", status_code=403)
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        if content_type not in ("", "application/x-www-form-urlencoded"):
            return PlainTextResponse("expected a urlencoded form", status_code=415)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                return PlainTextResponse("form too large", status_code=413)
        fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        return await handler(request, {name: values[0] for name, values in fields.items()})

    return endpoint


async def home(request: Request) -> Response:
    session = _session(request)
    if session.user_id is None:
        body = (
            '<form method="post" action="/login">'
            '<label>Your name <input type="text" name="name" required autofocus '
            f'maxlength="{MAX_NAME_LENGTH}"></label> <button>Log in</button></form>'
        )
        return _page("Welcome", body, session)
    session["visits"] = session.get("visits", 0) + 1
    body = (
        f"<p>You have viewed this page <strong>{session['visits']}</strong> "
        f"time{'s' if session['visits'] != 1 else ''} in this session.</p>"
        f'<p class="muted">Session started {_when(session.created_at)}, '
        f"expires {_when(session.expires_at)}.</p>"
        '<p><a href="/devices">Your devices</a></p>'
        '<form method="post" action="/logout"><button>Log out</button></form>'
    )
    return _page(f"Hello {session.user_id}", body, session)


async def login(request: Request, form: dict[str, str]) -> Response:
    session = _session(request)
    name = form.get("name", "").strip()
    try:
        if not name or len(name) > MAX_NAME_LENGTH:
            raise ValueError("too short or too long")
        session.user_id = name  # refuses control characters: a name must be printable
    except ValueError:
        session.flash(
            f"Please enter a name of 1 to {MAX_NAME_LENGTH} printable characters.", "error"
        )
        return _see_other("/")
    session.regenerate()  # a new ID on login, so a planted cookie never gains a user
    session["visits"] = 0
    session.flash(f"Welcome, {name}!")
    return _see_other("/")


async def logout(request: Request, form: dict[str, str]) -> Response:
    session = _session(request)
    session.destroy()
    session.flash("You are logged out.")  # set after destroy: a new, anonymous session
    return _see_other("/")


async def devices(request: Request) -> Response:
    """"Your devices": each live session of the user, with a button to end it."""
    session = _session(request)
    if session.user_id is None:
        return _see_other("/")
    rows = []
    found = await session.devices()
    for device in found:
        if device.current:
            action = "<strong>this device</strong>"
        else:
            action = (
                '<form class="inline" method="post" action="/devices/revoke">'
                f'<input type="hidden" name="device" value="{html.escape(device.id)}">'
                "<button>Revoke</button></form>"
            )
        rows.append(
            f"<tr><td>{html.escape(device.user_agent or 'unknown')}</td>"
            f"<td>{html.escape(device.ip or '')}</td>"
            f"<td>{_when(device.created_at)}</td><td>{_when(device.last_seen_at)}</td>"
            f"<td>{action}</td></tr>"
        )
    others = (
        '<form method="post" action="/devices/revoke-others">'
        "<button>Log out other devices</button></form>"
        if len(found) > 1
        else ""
    )
    body = (
        "<table><tr><th>Device</th><th>Address</th><th>Signed in</th><th>Last seen</th>"
        f"<th></th></tr>{''.join(rows)}</table>{others}"
        '<p><a href="/">Back</a></p>'
    )
    return _page(f"Devices of {session.user_id}", body, session)


async def revoke(request: Request, form: dict[str, str]) -> Response:
    """End one of the current user's sessions; an id that is not theirs ends nothing."""
    session = _session(request)
    if session.user_id is None:
        return _see_other("/")
    if await session.revoke_device(form.get("device", "")):
        session.flash("Device signed out.")
    else:
        session.flash("No such device of yours.", "error")
    return _see_other("/devices")


async def revoke_others(request: Request, form: dict[str, str]) -> Response:
    session = _session(request)
    if session.user_id is None:
        return _see_other("/")
    ended = await session.revoke_others()
    session.flash(f"Signed out {ended} other device{'s' if ended != 1 else ''}.")
    return _see_other("/devices")


def build_demo(store: SessionStore, **options: Any) -> Starlette:
    """The demo app over ``store``; ``options`` go to SessionMiddleware.

    Sweeps expired sessions every 15 minutes while served, and closes the store
    on shutdown.
    """

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await store.close()

    app = Starlette(
        routes=[
            Route("/", home),
            Route("/login", _form_post(login), methods=["POST"]),
            Route("/logout", _form_post(logout), methods=["POST"]),
            Route("/devices", devices),
            Route("/devices/revoke", _form_post(revoke), methods=["POST"]),
            Route("/devices/revoke-others", _form_post(revoke_others), methods=["POST"]),
        ],
        lifespan=lifespan,
    )
    options.setdefault("cleanup_interval", 900)
    options.setdefault("track_devices", True)
    app.add_middleware(SessionMiddleware, store=store, **options)
    return app

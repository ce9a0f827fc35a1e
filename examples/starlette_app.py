"""A plain Starlette app with server-side sessions: a visit counter, a login form,
flash messages and a logout button.

    pip install 'asgi-server-sessions[cli]'
    uvicorn examples.starlette_app:app --reload

Sessions are kept in ``starlette-example.db``; set ``SESSION_STORE`` to use another
store, e.g. ``SESSION_STORE=redis://127.0.0.1:6379/0``. Any name logs in: a real app
checks a password before it calls ``regenerate()``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from html import escape
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from asgi_sessions import Session, SessionMiddleware, SessionStore, create_store

PAGE = """<!doctype html>
<title>asgi_sessions example</title>
{flashes}
<p>Visits in this session: <b id="visits">{visits}</b></p>
{account}
"""
LOGIN_FORM = """<form method="post" action="/login">
  <label>Name <input name="username" required></label> <button>Log in</button>
</form>"""
LOGOUT_FORM = """<p>Logged in as <b id="user">{user}</b></p>
<form method="post" action="/logout"><button>Log out</button></form>"""


def session_of(request: Request) -> Session:
    """``request.session`` with its type: a dict that also has user_id, flash, regenerate."""
    session: Session = request.scope["session"]
    return session


async def home(request: Request) -> Response:
    session = session_of(request)
    session["visits"] = session.get("visits", 0) + 1
    flashes = "".join(
        f'<p class="{category}">{escape(str(message))}</p>'
        for category, message in session.pop_flashes()
    )
    user = session.user_id
    account = LOGIN_FORM if user is None else LOGOUT_FORM.format(user=escape(user))
    return HTMLResponse(PAGE.format(flashes=flashes, visits=session["visits"], account=account))


async def login(request: Request) -> Response:
    form = parse_qs((await request.body()).decode())
    username = form.get("username", [""])[0].strip()
    if not username:
        return HTMLResponse("A name is required to log in.", status_code=400)
    session = session_of(request)
    session.regenerate()  # a new ID at every privilege change: no session fixation
    session.user_id = username
    session.flash(f"Welcome, {username}!")
    return RedirectResponse("/", status_code=303)


async def logout(request: Request) -> Response:
    session = session_of(request)
    session.destroy()  # deletes the record; what follows starts a new session
    session.flash("You are logged out.")
    return RedirectResponse("/", status_code=303)


def create_app(store: SessionStore) -> Starlette:
    """The example app, its sessions kept in ``store`` (closed at shutdown)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with store:
            yield

    return Starlette(
        routes=[
            Route("/", home),
            Route("/login", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
        ],
        middleware=[Middleware(SessionMiddleware, store=store)],
        lifespan=lifespan,
    )


app = create_app(create_store(os.environ.get("SESSION_STORE", "sqlite:///starlette-example.db")))

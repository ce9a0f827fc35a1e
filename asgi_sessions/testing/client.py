"""Logging a test client in without going through a login form."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import httpx

from asgi_sessions.middleware import find_middleware
from asgi_sessions.persistence import create_session


async def login(
    client: httpx.AsyncClient | httpx.Client,
    app: Any,
    user_id: str | int | None,
    data: Mapping[str, Any] | None = None,
) -> str:
    """Create a session for ``user_id`` and give ``client`` its cookie.

    ``app`` is the app SessionMiddleware was added to (or the middleware itself): the
    session follows its settings (store, timeouts, serializer, token generator) and the
    cookie gets its name, ``__Host-`` prefix included. Works with ``httpx.AsyncClient``
    and Starlette's ``TestClient``; returns the token, e.g. to assert on later.
    """
    middleware = find_middleware(app)
    token = await create_session(middleware, data, user_id=user_id)
    client.cookies.set(middleware.cookie.cookie_name, token)
    return token


def login_sync(
    client: httpx.Client,
    app: Any,
    user_id: str | int | None,
    data: Mapping[str, Any] | None = None,
) -> str:
    """``login()`` for synchronous tests using Starlette's ``TestClient``."""
    return asyncio.run(login(client, app, user_id, data))

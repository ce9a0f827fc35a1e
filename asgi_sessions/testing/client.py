"""Logging a test client in without going through a login form."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import httpx

from asgi_sessions.persistence import create_session
from asgi_sessions.stores.base import SessionStore


async def login(
    client: httpx.AsyncClient | httpx.Client,
    store: SessionStore,
    user_id: str | int | None,
    data: Mapping[str, Any] | None = None,
    *,
    session_cookie: str = "session",
) -> str:
    """Create a session for ``user_id`` in ``store`` and give ``client`` its cookie.

    Works with ``httpx.AsyncClient`` and Starlette's ``TestClient``; returns the
    token, e.g. to assert on later.
    """
    token = await create_session(store, data, user_id=user_id)
    client.cookies.set(session_cookie, token)
    return token


def login_sync(
    client: httpx.Client,
    store: SessionStore,
    user_id: str | int | None,
    data: Mapping[str, Any] | None = None,
    *,
    session_cookie: str = "session",
) -> str:
    """``login()`` for synchronous tests using Starlette's ``TestClient``."""
    return asyncio.run(login(client, store, user_id, data, session_cookie=session_cookie))

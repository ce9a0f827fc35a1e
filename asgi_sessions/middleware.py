"""``SessionMiddleware``: loads ``scope["session"]`` from a store and saves it before
the response starts. A drop-in for Starlette's cookie ``SessionMiddleware``."""

from __future__ import annotations

import math
import os
from datetime import timedelta
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from asgi_sessions import cleanup
from asgi_sessions.cookies import CookiePolicy, SameSite
from asgi_sessions.exceptions import InsecureConfiguration, StoreUnavailable
from asgi_sessions.persistence import (
    DEFAULT_ABSOLUTE_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_SIZE,
    ActiveSession,
    SessionBackend,
)
from asgi_sessions.serializers import Serializer
from asgi_sessions.session import Lifetime, UnavailableSession, seconds
from asgi_sessions.stores.base import SessionStore
from asgi_sessions.tokens import TokenGenerator

_DEFAULT: Any = object()


class SessionMiddleware:
    """Server-side sessions for any ASGI app, kept in ``store``.

    ``session_cookie``, ``max_age``, ``path``, ``same_site``, ``https_only`` and
    ``domain`` mean what they mean for Starlette's cookie sessions; ``max_age`` is
    the idle timeout, and ``max_age=None`` makes a browser-session cookie.

    With ``autoload=False`` a request's session is read only when the app awaits
    ``request.session.load()`` (FastAPI's ``SessionDep`` does), so requests that
    never use it cost no store call even when they carry a cookie.
    """

    def __init__(
        self,
        app: ASGIApp,
        store: SessionStore,
        session_cookie: str = "session",
        max_age: int | timedelta | None = _DEFAULT,
        path: str = "/",
        same_site: SameSite = "lax",
        https_only: bool = False,
        domain: str | None = None,
        *,
        idle_timeout: int | float | timedelta | None = None,
        absolute_timeout: int | float | timedelta = DEFAULT_ABSOLUTE_TIMEOUT,
        touch_interval: int | float | timedelta = 60,
        host_prefix: bool = False,
        partitioned: bool = False,
        max_size: int = DEFAULT_MAX_SIZE,
        serializer: Serializer | None = None,
        generate_token: TokenGenerator | None = None,
        cleanup_interval: int | float | timedelta | None = None,
        retry_after: int = 5,
        autoload: bool = True,
    ) -> None:
        if idle_timeout is not None and max_age not in (_DEFAULT, None):
            raise ValueError("pass idle_timeout or its alias max_age, not both")
        if os.environ.get("ASGI_SESSIONS_ENV") == "production" and not https_only:
            raise InsecureConfiguration(
                "ASGI_SESSIONS_ENV=production but https_only=False would send the session "
                "cookie over plain HTTP: pass https_only=True (serve over HTTPS)"
            )
        self.app = app
        self.store = store
        self.browser_cookie = max_age is None
        idle = idle_timeout if idle_timeout is not None else max_age
        if idle in (_DEFAULT, None):
            idle = DEFAULT_IDLE_TIMEOUT
        absolute = seconds(absolute_timeout, "absolute_timeout")
        lifetime = Lifetime(
            seconds(idle, "idle_timeout"), absolute, seconds(touch_interval, "touch_interval")
        )
        self.backend = SessionBackend(
            store,
            lifetime,
            serializer=serializer,
            max_size=max_size,
            generate_token=generate_token,
        )
        self.cookie = CookiePolicy(
            session_cookie, path, domain, same_site, https_only, partitioned, host_prefix
        )
        self.cleanup_interval = (
            None if cleanup_interval is None else seconds(cleanup_interval, "cleanup_interval")
        )
        self.retry_after = retry_after
        self.autoload = autoload

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" and self.cleanup_interval:
            await cleanup.run_during_lifespan(
                self.app, scope, receive, send, self.store, self.cleanup_interval
            )
            return
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        scope["session_store"] = self.store
        active: ActiveSession | None = await self._session(scope)
        if scope["type"] == "websocket":
            # Read-only: a handler that wants to write calls ``await session.save()``.
            await self.app(scope, receive, send)
            return

        started = unavailable = False

        async def send_wrapper(message: Message) -> None:
            nonlocal started, unavailable
            if message["type"] == "http.response.start":
                started = True
                if active is not None:
                    try:
                        await self._commit(active, message)
                    except StoreUnavailable:
                        unavailable = True
                        await self._unavailable(send)
                        return
            if not unavailable:
                await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except StoreUnavailable:
            if started:
                raise
            await self._unavailable(send)

    async def _session(self, scope: Scope) -> ActiveSession | None:
        """Put the request's session in the scope, read now unless ``autoload=False``;
        None, and a stand-in that answers 503 when used, if the store is down."""
        active = ActiveSession(self.backend, self.cookie.token_from(scope["headers"]))
        scope["session"] = active.session
        if self.autoload:
            try:
                await active.load()
            except StoreUnavailable as exc:
                scope["session"] = UnavailableSession(exc)
                return None
        return active

    async def _commit(self, active: ActiveSession, message: Message) -> None:
        """Save the session (unless the app failed) and add the cookie headers it needs."""
        if message["status"] < 500:
            await active.save()
        if active.record is None and not active.token_changed and not active.ended:
            return  # no session before or after: the response is the app's own
        # The raw header list is edited in place: cheaper than MutableHeaders, same result.
        headers: list[tuple[bytes, bytes]] = list(message.get("headers", ()))
        message["headers"] = headers
        _vary_on_cookie(headers)
        if active.token_changed and active.token is not None:
            cookie = self.cookie.header(active.token, self._max_age(active))
        elif active.ended:
            cookie = self.cookie.header(None, None)
        else:
            return
        headers.append((b"set-cookie", cookie.encode("latin-1")))
        if not any(name == b"cache-control" for name, _ in headers):
            headers.append((b"cache-control", b"no-store"))

    def _max_age(self, active: ActiveSession) -> int | None:
        """Seconds until the server expires the session, so browser and server agree."""
        expires_at = active.session.expires_at
        if self.browser_cookie or active.session.browser_session or expires_at is None:
            return None
        remaining = (expires_at - self.store.clock()).total_seconds()
        return max(1, math.ceil(remaining))

    async def _unavailable(self, send: Send) -> None:
        """Answer 503 with Retry-After: the session exists but cannot be reached now."""
        body = b"Session store unavailable; please retry shortly."
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(self.retry_after).encode()),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _vary_on_cookie(headers: list[tuple[bytes, bytes]]) -> None:
    """Make the response's ``Vary`` name ``Cookie``, as ``MutableHeaders`` would set it:
    the first Vary header gains ``, Cookie`` and any later ones are dropped."""
    found = [index for index, (name, _) in enumerate(headers) if name == b"vary"]
    if not found:
        headers.append((b"vary", b"Cookie"))
        return
    vary = headers[found[0]][1].decode("latin-1")
    if "cookie" in vary.lower():
        return
    headers[found[0]] = (b"vary", f"{vary}, Cookie".encode("latin-1") if vary else b"Cookie")
    for index in reversed(found[1:]):
        del headers[index]

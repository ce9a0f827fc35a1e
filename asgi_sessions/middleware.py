"""``SessionMiddleware``: loads ``scope["session"]`` from a store and saves it before
the response starts. A drop-in for Starlette's cookie ``SessionMiddleware``."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from asgi_sessions import cleanup
from asgi_sessions.cookies import CookiePolicy, SameSite, add_session_headers
from asgi_sessions.devices import AddressMode, Device, DeviceTracking
from asgi_sessions.events import SessionEvent, SessionEvents
from asgi_sessions.exceptions import (
    InsecureConfiguration,
    SessionConflict,
    SessionLimitReached,
    StoreUnavailable,
)
from asgi_sessions.lifetime import DEFAULT_TOUCH_INTERVAL, Duration, Lifetime, duration
from asgi_sessions.limits import LimitPolicy, SessionLimit
from asgi_sessions.persistence import (
    DEFAULT_MAX_SIZE,
    ActiveSession,
    CookieUpdate,
    SessionSettings,
)
from asgi_sessions.sealing import Sealer
from asgi_sessions.serializers import JSONSerializer, Serializer
from asgi_sessions.session import Session, UnavailableSession, empty_session, is_blank, release
from asgi_sessions.stores.base import SessionRecord, SessionStore
from asgi_sessions.telemetry import Telemetry
from asgi_sessions.tokens import TokenGenerator

__all__ = ["SessionMiddleware", "find_middleware"]

logger = logging.getLogger("asgi_sessions")

_STARLETTE_DEFAULT: Any = object()
_WEBSOCKET_ENDS = ("websocket.close", "websocket.http.response.body")
_REFUSED = (StoreUnavailable, SessionConflict)
"""Session errors answered with 503 rather than left to the server as a 500."""


class SessionMiddleware:
    """Server-side sessions for any ASGI app, kept in ``store``.

    | option | default | meaning |
    | --- | --- | --- |
    | `store` | required | the SessionStore that keeps the records |
    | `session_cookie` | `"session"` | the cookie's name |
    | `max_age` | 14 days | Starlette's name for `idle_timeout`; `None`: browser-session cookie |
    | `path` | `"/"` | the cookie's Path |
    | `same_site` | `"lax"` | `"lax"`, `"strict"` or `"none"` (needs `https_only`) |
    | `https_only` | `False` | mark the cookie Secure: sent over HTTPS only |
    | `domain` | `None` | the cookie's Domain; None keeps it to this host |
    | `idle_timeout` | 14 days | inactivity that ends a session; the same as `max_age` |
    | `absolute_timeout` | 30 days | age that ends a session however active; at least the idle one |
    | `touch_interval` | 60 s | a read-only request moves the expiry at most this often |
    | `host_prefix` | `False` | name the cookie `__Host-...` (needs `https_only`, no `domain`) |
    | `partitioned` | `False` | add Partitioned, for third-party contexts (needs `https_only`) |
    | `max_size` | 65536 | the largest serialized session accepted, in bytes |
    | `serializer` | JSON | turns session data into bytes and back, exactly |
    | `generate_token` | 256 random bits | makes new tokens; checked for length and alphabet |
    | `encryption` | `None` | seal data at rest: `KeyRing({...})` or `TokenBound()` |
    | `track_devices` | `False` | record each session's user agent, address and last-seen time |
    | `device_address` | `"full"` | or `"truncated"` (IPv4 /24, IPv6 /48), or `"none"` |
    | `events` | `None` | `SessionEvents` whose callbacks hear of logins, logouts, revokes... |
    | `telemetry` | `None` | `Telemetry()`: OpenTelemetry spans and metrics (`otel` extra) |
    | `max_sessions_per_user` | `None` | at most this many live sessions per user |
    | `session_limit` | `"evict_oldest"` | or `"refuse"`: a login over it is SessionLimitReached |
    | `cleanup_interval` | `None` | sweep expired sessions this often during the lifespan |
    | `retry_after` | 5 | the Retry-After of a 503 answer, in seconds |
    | `autoload` | `True` | read before the app runs; `False`: on `await session.load()` |

    Durations are seconds or a timedelta. The first six options mean what they mean
    for Starlette's cookie sessions.
    """

    def __init__(
        self,
        app: ASGIApp,
        store: SessionStore,
        session_cookie: str = "session",
        max_age: Duration | None = _STARLETTE_DEFAULT,
        path: str = "/",
        same_site: SameSite = "lax",
        https_only: bool = False,
        domain: str | None = None,
        *,
        idle_timeout: Duration | None = None,
        absolute_timeout: Duration | None = None,
        touch_interval: Duration = DEFAULT_TOUCH_INTERVAL,
        host_prefix: bool = False,
        partitioned: bool = False,
        max_size: int = DEFAULT_MAX_SIZE,
        serializer: Serializer | None = None,
        generate_token: TokenGenerator | None = None,
        encryption: Sealer | None = None,
        track_devices: bool = False,
        device_address: AddressMode = "full",
        events: SessionEvents | None = None,
        telemetry: Telemetry | None = None,
        max_sessions_per_user: int | None = None,
        session_limit: LimitPolicy = "evict_oldest",
        cleanup_interval: Duration | None = None,
        retry_after: int = 5,
        autoload: bool = True,
    ) -> None:
        if os.environ.get("ASGI_SESSIONS_ENV", "").strip().lower() == "production" and not (
            https_only
        ):
            raise InsecureConfiguration(
                "ASGI_SESSIONS_ENV=production but https_only=False would send the session "
                "cookie over plain HTTP: pass https_only=True (serve over HTTPS)"
            )
        self.app = app
        if telemetry is not None:
            store = telemetry.traced(store)
        self.store = store
        lifetime = Lifetime.from_options(
            max_age=None if max_age is _STARLETTE_DEFAULT else max_age,
            idle_timeout=idle_timeout,
            absolute_timeout=absolute_timeout,
            touch_interval=touch_interval,
            browser_cookie=max_age is None,
        )
        self.settings = SessionSettings(
            store,
            lifetime,
            serializer or JSONSerializer(),
            max_size,
            generate_token,
            encryption,
            DeviceTracking(track_devices, device_address),
            events,
            telemetry,
            None
            if max_sessions_per_user is None
            else SessionLimit(max_sessions_per_user, session_limit),
        )
        self.cookie = CookiePolicy(
            session_cookie, path, domain, same_site, https_only, partitioned, host_prefix
        )
        self.cleanup_interval = (
            None if cleanup_interval is None else duration(cleanup_interval, "cleanup_interval")
        )
        self.retry_after = retry_after
        self.autoload = autoload
        self._outages = _RateLimitedLog(logger, interval=10.0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # HTTP, nearly every call, is handled inline below
            await self._other(scope, receive, send)
            return
        active: ActiveSession | None = None
        deferred: _Deferred | None = None
        token = self.cookie.token_from(scope["headers"]) if self.autoload else None
        if token is not None:
            active = self._start(scope, token)
            session = active.session
            active = await self._load(scope, active)
        else:  # the cookie is read, if at all, when the app first uses the session
            deferred = _Deferred(self, scope, None if self.autoload else _UNREAD)
            session = deferred.session
            self._expose(scope, session)
        started = refused = False
        outage: Exception | None = None

        async def send_wrapper(message: Message) -> None:
            nonlocal active, started, refused, outage
            if message["type"] == "http.response.start":
                started, ok = True, message["status"] < 500
                if deferred is not None:
                    active = deferred.to_commit()
                if active is not None:
                    try:
                        update = None if active.idle else await active.commit(keep_changes=ok)
                    except _REFUSED as exc:
                        refused, outage = True, exc
                        await self._refuse(send, exc)
                        return
                    except SessionLimitReached as exc:
                        refused = True
                        await _answer(send, 409, str(exc).encode())
                        return
                    # A session read from the cookie makes the answer vary with it.
                    cookie = token if deferred is None else deferred.token
                    if update is not None or (
                        isinstance(cookie, str) and active.unread_token is None
                    ):
                        self._add_headers(message, update)
            if not refused:
                await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            error = _session_error(exc)
            if error is None or started:
                raise
            outage = error
            await self._refuse(send, error)
        finally:
            release(session)
        if self.settings.events is not None:
            await self._deliver(scope, active if deferred is None else deferred.active, outage)

    def _add_headers(self, message: Message, update: CookieUpdate | None) -> None:
        """Add to the response's start ``message`` what a response using the session needs:
        ``Vary: Cookie``, and the cookie ``update`` with its caching rule, if any."""
        headers: list[tuple[bytes, bytes]] = list(message.get("headers", ()))
        message["headers"] = headers
        cookie = None if update is None else self.cookie.header(update.token, update.max_age)
        add_session_headers(headers, cookie)

    async def _other(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a scope that is not HTTP: a websocket, the lifespan, anything else."""
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        elif scope["type"] == "lifespan" and self.cleanup_interval:
            await cleanup.run_during_lifespan(
                self.app, scope, receive, send, self.store, self.cleanup_interval
            )
        else:
            await self.app(scope, receive, send)

    async def _deliver(
        self, scope: Scope, active: ActiveSession | None, outage: Exception | None
    ) -> None:
        """Hand the request's session events to the app's callbacks, now that the
        response has been sent; a store that could not be reached is one too."""
        events = self.settings.events
        assert events is not None
        happened = () if active is None else active.happened
        if isinstance(outage, StoreUnavailable) and events.wants("unavailable"):
            happened = (*happened, SessionEvent("unavailable", None, None, str(outage)))
        if happened:
            request = Request(scope)
            await events.deliver(dataclasses.replace(e, request=request) for e in happened)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Give a websocket the session read-only (``await session.save()`` writes); a store
        failure refuses the handshake with 503, or closes with 1013 (try again later)."""
        token = self.cookie.token_from(scope["headers"])
        active = self._start(scope, token)
        if self.autoload and token is not None:
            await self._load(scope, active)
        opened = closed = False

        async def send_wrapper(message: Message) -> None:
            nonlocal opened, closed
            opened = opened or message["type"] == "websocket.accept"
            closed = closed or message["type"] in _WEBSOCKET_ENDS
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            error = _session_error(exc)
            if error is None:
                raise
            self._log(error)
            if closed:
                return
            if not opened and "websocket.http.response" in scope.get("extensions", {}):
                await self._refuse(send, error, prefix="websocket.http.")
            else:
                await send({"type": "websocket.close", "code": 1013})
        finally:
            release(active.session)

    def _start(self, scope: Scope, token: str | None) -> ActiveSession:
        """Put the request's session in the scope, not read yet."""
        active = ActiveSession(self.settings, token, self.settings.devices.client(scope))
        self._expose(scope, active.session)
        return active

    def _expose(self, scope: Scope, session: Session) -> None:
        """Put the request's session and the store in the scope, where the app finds them."""
        scope["session"] = session
        scope["session_store"] = self.store

    async def _load(self, scope: Scope, active: ActiveSession) -> ActiveSession | None:
        """Read the session now (``autoload``); None, and a stand-in that answers 503
        when used, if the store is down."""
        try:
            await active.load()
        except StoreUnavailable as exc:
            self._log(exc)
            scope["session"] = UnavailableSession(exc)
            return None
        return active

    async def _refuse(self, send: Send, error: Exception, *, prefix: str = "http.") -> None:
        """Answer 503 with Retry-After: the session exists but cannot be used right now."""
        self._log(error)
        if self.settings.telemetry is not None:
            reason = "conflict" if isinstance(error, SessionConflict) else "unavailable"
            self.settings.telemetry.refused.add(1, {"asgi_sessions.reason": reason})
        body = b"Session store unavailable; please retry shortly."
        if isinstance(error, SessionConflict):
            body = b"The session changed while this request was saved; please retry."
        await _answer(send, 503, body, [(b"retry-after", str(self.retry_after).encode())], prefix)

    def _log(self, error: Exception) -> None:
        """Tell the operator, at most once per interval: the store is down or contended."""
        if isinstance(error, SessionConflict):
            self._outages.warning("session conflict answered with 503: %s", error)
        else:
            self._outages.warning("session store unavailable, answered with 503: %s", error)


async def _answer(
    send: Send,
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
    prefix: str = "http.",
) -> None:
    """Send a short plain-text response of the middleware's own, never cached."""
    sent = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        *(headers or []),
        (b"cache-control", b"no-store"),
    ]
    await send({"type": f"{prefix}response.start", "status": status, "headers": sent})
    await send({"type": f"{prefix}response.body", "body": body})


def _session_error(exc: BaseException) -> Exception | None:
    """The session error behind ``exc``: itself, or the one inside an exception group
    (anyio task groups wrap errors) that holds nothing else; None for any other error."""
    if isinstance(exc, _REFUSED):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        matched, rest = exc.split(_REFUSED)
        if matched is not None and rest is None:
            return _session_error(matched.exceptions[0])
    return None


class _RateLimitedLog:
    """Log a repeated warning once per ``interval`` seconds, counting what it held back,
    so an outage is reported without flooding the log."""

    def __init__(self, logger: logging.Logger, *, interval: float) -> None:
        self._logger, self._interval = logger, interval
        self._next = 0.0
        self._held_back = 0

    def warning(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now < self._next:
            self._held_back += 1
            return
        if self._held_back:
            message += f" ({self._held_back} more in the last {self._interval:g} s)"
        self._next, self._held_back = now + self._interval, 0
        self._logger.warning(message, *args)


class _Unread:
    """The cookie of a request not read yet."""


_UNREAD = _Unread()


class _Deferred:
    """Holds a request's Session until the app asks more of it than its data (a load, a
    save, its record...), and only then makes its ActiveSession, reading the cookie then
    if that is still to do. Most requests never ask, and cost no more than this."""

    __slots__ = ("active", "middleware", "scope", "session", "token")

    def __init__(
        self, middleware: SessionMiddleware, scope: Scope, token: str | _Unread | None
    ) -> None:
        self.middleware = middleware
        self.scope = scope
        self.token = token
        """The cookie's well-formed token, None without one, or _UNREAD."""
        self.active: ActiveSession | None = None
        self.session = empty_session(self, loaded=token is None)

    def start(self) -> ActiveSession:
        """The request's ActiveSession, made on first call; it holds the Session from then on."""
        if self.active is None:
            settings = self.middleware.settings
            client = settings.devices.client(self.scope)
            self.active = ActiveSession(settings, self._token(), client, self.session)
        return self.active

    def to_commit(self) -> ActiveSession | None:
        """The ActiveSession to commit: the one made for the app, or one made now for data
        put in a session the app asked nothing else of; None if the app did neither."""
        session = self.session
        if self.active is None and type(session) is Session and not is_blank(session):
            return self.start()
        return self.active

    def _token(self) -> str | None:
        token = self.token
        if isinstance(token, _Unread):
            token = self.token = self.middleware.cookie.token_from(self.scope["headers"])
        return token

    @property
    def record(self) -> SessionRecord | None:
        return None if self.active is None else self.active.record

    def must_load(self) -> bool:
        return self.active.must_load() if self.active else self._token() is not None

    async def load(self) -> None:
        await self.start().load()

    async def save(self) -> None:
        await self.start().save()

    async def reload(self) -> None:
        await self.start().reload()

    def before_commit(self, hook: Callable[[], None]) -> None:
        self.start().before_commit(hook)

    async def devices(self) -> list[Device]:
        return await self.start().devices()

    async def revoke_device(self, id: str) -> bool:
        return await self.start().revoke_device(id)

    async def revoke_others(self) -> int:
        return await self.start().revoke_others()


def find_middleware(target: Any) -> SessionMiddleware:
    """The SessionMiddleware in ``target``: itself, or one in an app's middleware stack
    (Starlette and FastAPI apps, or anything whose ``app`` attributes lead to one)."""
    node = target
    if hasattr(node, "build_middleware_stack"):  # a Starlette or FastAPI app
        node = node.middleware_stack or node.build_middleware_stack()
    for _ in range(100):
        if node is None:
            break
        if isinstance(node, SessionMiddleware):
            return node
        node = getattr(node, "app", None)
    raise ValueError(
        f"no SessionMiddleware found in {type(target).__name__}: pass the app you added "
        "SessionMiddleware to, or the middleware itself"
    )

"""FastAPI dependencies: the session, the logged-in user, and the store for admin routes.

    @app.get("/me")
    async def me(user_id: UserIdDep, session: SessionDep): ...
"""

import re
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyCookie

from asgi_sessions.session import Session
from asgi_sessions.stores.base import SessionStore

__all__ = ["SessionDep", "StoreDep", "UserIdDep", "get_session", "get_store", "require_user"]

_MISSING_MIDDLEWARE = (
    "no session on this request: add the middleware with "
    "app.add_middleware(SessionMiddleware, store=...)"
)


async def get_session(request: Request) -> Session:
    """The request's Session, read from the store if SessionMiddleware has not yet."""
    if "session" not in request.scope:
        raise RuntimeError(_MISSING_MIDDLEWARE)
    session: Session = request.scope["session"]
    await session.load()
    return session


async def get_store(request: Request) -> SessionStore:
    """The store SessionMiddleware uses, for admin routes (list and revoke sessions)."""
    if "session_store" not in request.scope:
        raise RuntimeError(_MISSING_MIDDLEWARE)
    store: SessionStore = request.scope["session_store"]
    return store


_user_dependencies: dict[str, Callable[..., Awaitable[str]]] = {}
"""One dependency per cookie name, so FastAPI runs it once per request however often used."""


def require_user(session_cookie: str = "session") -> Callable[..., Awaitable[str]]:
    """A dependency returning the logged-in user's id, or answering 401.

    For an app whose ``SessionMiddleware`` names its cookie ``session_cookie``;
    ``UserIdDep`` is ``Annotated[str, Depends(require_user())]``. Use it as FastAPI
    dependencies are used: ``Annotated[str, Depends(require_user("sid"))]`` in a
    signature, or ``dependencies=[Depends(require_user("sid"))]`` on a route or router.
    The cookie is declared as an API-key-in-cookie security scheme named after it, so
    OpenAPI and ``/docs`` show which routes need a login and which cookie to send.
    One cookie name always gives the same dependency.
    """
    if session_cookie not in _user_dependencies:
        _user_dependencies[session_cookie] = _user_dependency(session_cookie)
    return _user_dependencies[session_cookie]


def _user_dependency(session_cookie: str) -> Callable[..., Awaitable[str]]:
    scheme = APIKeyCookie(
        name=session_cookie,
        scheme_name=re.sub(r"[^A-Za-z0-9._-]", "_", session_cookie),  # as OpenAPI allows
        description="Session cookie set by SessionMiddleware at login.",
        auto_error=False,
    )

    async def user_id(
        session: Annotated[Session, Depends(get_session)],
        _cookie: Annotated[str | None, Security(scheme)] = None,
    ) -> str:
        if session.user_id is None:
            raise HTTPException(status_code=401, detail="Not logged in")
        return session.user_id

    return user_id


SessionDep = Annotated[Session, Depends(get_session)]
"""The request's Session (a dict); loaded by SessionMiddleware."""

UserIdDep = Annotated[str, Depends(require_user())]
"""The logged-in user's id; 401 when the session has none."""

StoreDep = Annotated[SessionStore, Depends(get_store)]
"""The SessionStore behind the middleware."""

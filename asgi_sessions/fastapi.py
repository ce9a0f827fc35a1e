"""FastAPI dependencies: the session, the logged-in user, and the store for admin routes.

    @app.get("/me")
    async def me(user_id: UserIdDep, session: SessionDep): ...
"""


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


def require_user(session_cookie: str = "session") -> Callable[..., Awaitable[str]]:
    """A dependency returning the logged-in user's id, or answering 401.

    The cookie is declared as an API-key-in-cookie security scheme, so OpenAPI and
    ``/docs`` show which routes need a login.
    """
    scheme = APIKeyCookie(
        name=session_cookie,
        scheme_name="session",
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

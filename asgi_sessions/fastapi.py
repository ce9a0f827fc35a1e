"""FastAPI dependencies: the session, the logged-in user, and the store for admin routes.

@app.get("/me")
async def me(user_id: UserIdDep, session: SessionDep): ...
"""

import dataclasses
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Request, Security, params
from fastapi.security import APIKeyCookie
from pydantic import BaseModel, ValidationError

from asgi_sessions.devices import Device
from asgi_sessions.session import Session, before_commit
from asgi_sessions.stores.base import SessionStore

__all__ = [
    "DeviceOut",
    "DevicesDep",
    "SessionDep",
    "SessionModel",
    "StoreDep",
    "UserIdDep",
    "devices_router",
    "get_devices",
    "get_session",
    "get_store",
    "require_user",
]

logger = logging.getLogger("asgi_sessions")
M = TypeVar("M", bound=BaseModel)

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


@dataclasses.dataclass(frozen=True)
class SessionModel(params.Depends):
    """A pydantic model backed by the session: ``cart: Annotated[Cart, SessionModel()]``.

    The model is read from ``session[key]`` (``key`` defaults to the model's class name)
    and validated when the route runs; stored data that does not validate gives the
    model's defaults and a log line, never a 500. Changes to it are written back at
    commit, through the same compare-and-set merge as the dict, and only when the model's
    JSON form changed. datetime, UUID and Decimal fields round-trip through their JSON
    form. Every field needs a default: a new session has no data yet.
    """

    model: type[BaseModel] | None = None
    key: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        model = self.model or self.dependency  # FastAPI puts the annotated type here
        if isinstance(model, type) and issubclass(model, BaseModel):
            object.__setattr__(self, "dependency", _bound(model, self.key or model.__name__))
        elif self.dependency is not None or self.model is not None:
            raise TypeError(
                f"SessionModel needs a pydantic model, not {model!r}: write "
                "Annotated[YourModel, SessionModel()]"
            )


def _bound(model: type[M], key: str) -> Callable[..., Awaitable[M]]:
    """The dependency that hands a route ``model`` read from ``session[key]``."""
    missing = [name for name, field in model.model_fields.items() if field.is_required()]
    if missing:
        raise TypeError(
            f"{model.__name__} cannot back a session: give {', '.join(missing)} a default, "
            "since a new session holds no data yet"
        )

    async def bound(request: Request) -> M:
        session = await get_session(request)
        stored = session.get(key)
        try:
            instance = model() if stored is None else model.model_validate(stored)
        except ValidationError as exc:
            logger.warning(
                "session[%r] does not validate as %s; using its defaults: %s",
                key,
                model.__name__,
                exc.errors(include_url=False, include_input=False),
            )
            instance = model()
        shown = instance.model_dump(mode="json")

        def write_back() -> None:
            dumped = instance.model_dump(mode="json")
            if dumped != shown or (stored is not None and dumped != stored):
                session[key] = dumped

        before_commit(session, write_back)
        return instance

    return bound


async def get_devices(
    session: Annotated[Session, Depends(get_session)],
    _user: Annotated[str, Depends(require_user())],
) -> list[Device]:
    """The logged-in user's live sessions (see ``Session.devices``); 401 when anonymous."""
    return await session.devices()


DevicesDep = Annotated[list[Device], Depends(get_devices)]
"""The logged-in user's devices, this one marked ``current``; 401 when anonymous."""


class DeviceOut(BaseModel):
    """A device as ``devices_router`` answers it: never the token or the stored key."""

    id: str
    current: bool
    user_agent: str | None
    ip: str | None
    created_at: datetime
    last_seen_at: datetime | None


class Revoked(BaseModel):
    """How many sessions a revoke ended."""

    revoked: int


def devices_router(session_cookie: str = "session") -> APIRouter:
    """Routes for a "your devices" page, for the logged-in user (401 otherwise):

    - ``GET /devices``: the devices, oldest first;
    - ``POST /devices/{id}/revoke``: end one (404 if it is not the user's);
    - ``POST /devices/revoke-others``: end all but this one.

    Mount with ``app.include_router(devices_router(), prefix="/account")``; pass the
    middleware's ``session_cookie`` if it is not ``"session"``.
    """
    router = APIRouter(dependencies=[Depends(require_user(session_cookie))], tags=["devices"])

    @router.get("/devices", response_model=list[DeviceOut])
    async def list_devices(session: SessionDep) -> list[DeviceOut]:
        found = await session.devices()
        return [DeviceOut.model_validate(d, from_attributes=True) for d in found]

    @router.post("/devices/{id}/revoke", response_model=Revoked)
    async def revoke_device(id: str, session: SessionDep) -> Revoked:
        if not await session.revoke_device(id):
            raise HTTPException(status_code=404, detail="No such device of yours")
        return Revoked(revoked=1)

    @router.post("/devices/revoke-others", response_model=Revoked)
    async def revoke_others(session: SessionDep) -> Revoked:
        return Revoked(revoked=await session.revoke_others())

    return router

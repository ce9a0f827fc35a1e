"""``request.session``: a dict with a user link, flash messages and lifetime controls.

The dict is what the app sees. Whoever loaded it (the middleware's ``ActiveSession``)
is its handle: it owns the stored record and commits the dict back; until the app
first needs that handle, a stand-in of the middleware holds the session and makes
one. What the app asks for beyond data (regenerate, destroy) is kept privately here
until the commit takes it.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from asgi_sessions.exceptions import SessionNotLoaded, StoreUnavailable
from asgi_sessions.lifetime import ALREADY_OVER, EXPIRY_KEY, is_browser_session, own_expiry

if TYPE_CHECKING:
    from asgi_sessions.devices import Device
    from asgi_sessions.stores.base import SessionRecord

__all__ = [
    "FLASHES_KEY",
    "MAX_USER_ID_LENGTH",
    "Action",
    "Session",
    "SessionHandle",
    "UnavailableSession",
    "UnloadedSession",
    "before_commit",
    "checked_user_id",
    "empty_session",
    "hand_over",
    "release",
    "take_action",
]

FLASHES_KEY = "_flashes"
"""Where pending flash messages are kept in the data, as in Flask."""

MAX_USER_ID_LENGTH = 256
"""Longest user id accepted, in characters (an email address fits)."""


class Action(enum.Enum):
    """What the app asked to happen to the stored session at commit, beyond its data."""

    REGENERATE = "regenerate"
    DESTROY = "destroy"


class SessionHandle(Protocol):
    """What a Session asks of whoever loaded it: its record, and load, commit or reload."""

    @property
    def record(self) -> SessionRecord | None: ...

    async def load(self) -> None: ...

    async def save(self) -> None: ...

    async def reload(self) -> None: ...

    def before_commit(self, hook: Callable[[], None]) -> None: ...

    def must_load(self) -> bool:
        """Whether the request's cookie may name a record, so that the Session must be
        loaded before use; False when there is nothing to load."""
        ...

    async def devices(self) -> list[Device]: ...

    async def revoke_device(self, id: str) -> bool: ...

    async def revoke_others(self) -> int: ...


def checked_user_id(value: object) -> str | None:
    """``value`` as the user id kept at rest: text, with ints and UUIDs as their text.

    ``1`` and ``"1"`` are the same user. Control characters (NUL included), lone
    surrogates, empty text and more than MAX_USER_ID_LENGTH characters are refused:
    stores, logs and the command line could not keep or show them faithfully.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | uuid.UUID):
        raise TypeError(f"user_id must be a str, int or UUID, not {type(value).__name__}")
    text = str(value)
    if not text:
        raise ValueError("user_id must not be empty; set it to None for no user")
    if len(text) > MAX_USER_ID_LENGTH:
        raise ValueError(
            f"user_id is {len(text)} characters, over the limit of {MAX_USER_ID_LENGTH}; "
            "store the user's id, not the user"
        )
    if not text.isprintable() and any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise ValueError(f"user_id {text[:40]!r} holds a control character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("user_id holds a lone surrogate, which cannot be stored") from None
    return text


class Session(dict[str, Any]):
    """A dict of session data with a user link, flash messages and lifetime controls.

    Every dict operation works as usual; changes are found by comparing the data
    at commit with what was loaded, so nested mutation is saved too.
    """

    __slots__ = ("_action", "_handle", "_user_id")

    def __init__(
        self,
        data: dict[str, Any] | None = None,
        *,
        user_id: str | int | None = None,
        handle: SessionHandle | None = None,
    ) -> None:
        if data:
            super().__init__(data)
        self._user_id = None if user_id is None else checked_user_id(user_id)
        self._action: Action | None = None
        self._handle = handle

    @property
    def _record(self) -> SessionRecord | None:
        return None if self._handle is None else self._handle.record

    @property
    def is_new(self) -> bool:
        """True when no stored record stands behind this session (yet)."""
        return self._record is None

    @property
    def key(self) -> str | None:
        """How stores name this session (the token's digest); None until stored."""
        record = self._record
        return None if record is None else record.key

    @property
    def created_at(self) -> datetime | None:
        """When the stored record was made (aware UTC); None before the first save."""
        record = self._record
        return None if record is None else record.created_at

    @property
    def expires_at(self) -> datetime | None:
        """When the stored record stops being returned (aware UTC); None before the first save."""
        record = self._record
        return None if record is None else record.expires_at

    @property
    def user_id(self) -> str | None:
        """The user this session belongs to; stored beside the data and indexed.

        Accepts a str, an int or a UUID and keeps its text, so ``1`` and ``"1"`` are
        the same user.
        """
        return self._user_id

    @user_id.setter
    def user_id(self, value: str | int | uuid.UUID | None) -> None:
        self._user_id = checked_user_id(value)

    def regenerate(self) -> None:
        """Issue a new ID at commit, keep the data, retire the old record (call at login)."""
        if self._action is None:
            self._action = Action.REGENERATE

    def destroy(self) -> None:
        """Delete the record and expire the cookie at commit; the dict is emptied (logout).

        Data set afterwards in the same request starts a new session with a new ID.
        """
        self._action = Action.DESTROY
        self.clear()
        self._user_id = None

    def set_expiry(self, value: int | float | timedelta | datetime | None) -> None:
        """Give this session its own lifetime, ahead of the idle timeout.

        Seconds or a timedelta slide with activity; a datetime is a fixed end; 0 makes
        a browser-session cookie; None returns to the middleware's timeouts. It never
        outlives the middleware's absolute timeout. A value in the past destroys the
        session; NaN, infinity or more than a hundred years is a ValueError.
        """
        stored = own_expiry(value)
        if stored is None:
            self.pop(EXPIRY_KEY, None)
        elif stored == ALREADY_OVER:
            self.destroy()
        else:
            self[EXPIRY_KEY] = stored

    @property
    def browser_session(self) -> bool:
        """True when the cookie should end with the browser (``set_expiry(0)``)."""
        return is_browser_session(self.get(EXPIRY_KEY))

    def flash(self, message: Any, category: str = "info") -> None:
        """Keep a message for the next request that calls ``pop_flashes``."""
        self.setdefault(FLASHES_KEY, []).append([category, message])

    def pop_flashes(self) -> list[tuple[str, Any]]:
        """Return pending messages as ``(category, message)`` pairs, oldest first, and
        forget them."""
        return [(category, message) for category, message in self.pop(FLASHES_KEY, [])]

    async def load(self) -> None:
        """Make sure the data has been read from the store; needed only with
        ``SessionMiddleware(autoload=False)``, and free once done."""
        await self._require_handle().load()

    async def save(self) -> None:
        """Commit to the store now rather than when the response starts."""
        await self._require_handle().save()

    async def reload(self) -> None:
        """Replace the data with what the store holds now, dropping unsaved changes and
        a pending regenerate or destroy."""
        await self._require_handle().reload()

    async def devices(self) -> list[Device]:
        """The current user's live sessions, oldest first, each with an ``id`` safe to
        show, ``current``, ``user_agent``, ``ip``, ``created_at`` and ``last_seen_at``
        (recorded with ``SessionMiddleware(track_devices=True)``); [] when anonymous."""
        return await self._require_handle().devices()

    async def revoke_device(self, id: str) -> bool:
        """End one of the current user's sessions by its device ``id``; False, ending
        nothing, for an id that is not theirs. This session's own id logs it out."""
        return await self._require_handle().revoke_device(id)

    async def revoke_others(self) -> int:
        """End every session of the current user but this one ("log out other devices");
        return how many were ended."""
        return await self._require_handle().revoke_others()

    def _require_handle(self) -> SessionHandle:
        if self._handle is None:
            raise RuntimeError(
                "this Session is not held by SessionMiddleware: it was made by hand, "
                "or its request is over"
            )
        return self._handle


def before_commit(session: Session, hook: Callable[[], None]) -> None:
    """Call ``hook`` just before each commit of ``session`` that keeps changes, so a view
    of the data kept elsewhere (a typed model) is written into the dict in time."""
    session._require_handle().before_commit(hook)


def take_action(session: Session) -> Action | None:
    """Return what the app asked for at commit (regenerate, destroy or nothing) and clear it."""
    action, session._action = session._action, None
    return action


def is_blank(session: Session) -> bool:
    """Tell whether ``session`` holds no data and no user, and nothing was asked of it."""
    return not session and session._user_id is None and session._action is None


def release(session: Session) -> None:
    """Let ``session`` go of its handle when its request is over.

    Session and handle refer to each other; broken here, both are freed as soon as the
    request drops them, instead of waiting for Python's cycle collector.
    """
    session._handle = None


def hand_over(session: Session, handle: SessionHandle) -> None:
    """Let ``handle`` hold ``session`` from now on, in place of a stand-in."""
    session._handle = handle


def empty_session(handle: SessionHandle, *, loaded: bool = True) -> Session:
    """An empty Session held by ``handle``, an UnloadedSession unless ``loaded``.

    One is made for every request, so this skips ``__init__``'s argument handling and
    checks: with no data and no user there is nothing to check.
    """
    session: Session = dict.__new__(Session if loaded else UnloadedSession)
    session._user_id = session._action = None
    session._handle = handle
    return session


class UnloadedSession(Session):
    """A Session whose record has not been read yet (``autoload=False``).

    Any use raises SessionNotLoaded rather than showing an empty session that is not
    really empty; ``await session.load()`` turns it into a plain Session. If the
    request's cookie names no record after all (no cookie, or a malformed one), the
    first use finds that out and the session is a plain, empty one from then on.
    """

    __slots__ = ()

    def _loaded(self) -> Session:
        """This session as a plain Session, if there is nothing to load; otherwise
        SessionNotLoaded."""
        handle = self._handle
        if handle is None or handle.must_load():
            raise SessionNotLoaded(
                "request.session has not been read yet: with "
                "SessionMiddleware(autoload=False), call 'await request.session.load()' "
                "first (FastAPI's SessionDep does it)"
            )
        session: Session = self
        session.__class__ = Session
        return session

    __hash__ = None  # type: ignore[assignment]

    @property
    def is_new(self) -> bool:
        return self._loaded().is_new

    @property
    def key(self) -> str | None:
        return self._loaded().key

    @property
    def created_at(self) -> datetime | None:
        return self._loaded().created_at

    @property
    def expires_at(self) -> datetime | None:
        return self._loaded().expires_at

    @property
    def user_id(self) -> str | None:
        return self._loaded().user_id

    @user_id.setter
    def user_id(self, value: Any) -> None:
        self._loaded().user_id = value

    def __repr__(self) -> str:
        return "<Session not loaded yet>"


def _once_loaded(name: str) -> Callable[..., Any]:
    """``Session.<name>`` for an UnloadedSession: SessionNotLoaded, unless there is
    nothing to load (then the session is plain and the call goes through)."""

    def method(self: UnloadedSession, *args: Any, **kwargs: Any) -> Any:
        return getattr(self._loaded(), name)(*args, **kwargs)

    method.__name__ = method.__qualname__ = name
    return method


for _name in (
    *("__getitem__", "__setitem__", "__delitem__", "__contains__", "__iter__", "__len__"),
    *("get", "keys", "values", "items", "pop", "popitem", "setdefault", "update", "clear"),
    *("copy", "__or__", "__ior__", "__eq__", "__ne__", "__reversed__"),
    *("regenerate", "destroy", "set_expiry", "flash", "pop_flashes"),
    *("devices", "revoke_device", "revoke_others"),
):
    setattr(UnloadedSession, _name, _once_loaded(_name))


class UnavailableSession:
    """Stands in for ``request.session`` while the store is down; any use raises.

    The middleware turns the StoreUnavailable it raises into a 503, so requests
    that never touch the session are served as usual.
    """

    def __init__(self, error: StoreUnavailable) -> None:
        self._error = error

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailable(str(self._error)) from self._error

    def __getattr__(self, name: str) -> Any:
        self._fail()

    __getitem__ = __setitem__ = __delitem__ = __contains__ = __iter__ = __len__ = _fail
    __bool__ = __eq__ = _fail
    __hash__ = None  # type: ignore[assignment]

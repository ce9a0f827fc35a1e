"""``request.session``: a dict with a lifetime, and the rules that compute that lifetime."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from asgi_sessions.exceptions import CorruptSession, SessionNotLoaded, StoreUnavailable

EXPIRY_KEY = "_session_expiry"
"""Where a session's own ``set_expiry`` value is kept in its data, as in Django."""

FLASHES_KEY = "_flashes"
"""Where pending flash messages are kept in the data, as in Flask."""

Duration = int | float | timedelta


def seconds(value: Duration, name: str) -> float:
    """Return ``value`` in seconds, refusing negatives with a ValueError naming ``name``."""
    result = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if result < 0 or math.isnan(result):
        raise ValueError(f"{name} must be zero or more seconds, got {value!r}")
    return result


@dataclass(frozen=True, slots=True)
class Lifetime:
    """The middleware's expiry policy: idle and absolute timeouts, and how often to slide."""

    idle_timeout: float
    absolute_timeout: float
    touch_interval: float = 60.0
    idle: timedelta = field(init=False, repr=False, compare=False)
    absolute: timedelta = field(init=False, repr=False, compare=False)
    touch: timedelta = field(init=False, repr=False, compare=False)
    """The three durations as timedeltas, made once rather than on every request."""

    def __post_init__(self) -> None:
        if self.idle_timeout > self.absolute_timeout:
            raise ValueError(
                f"idle_timeout ({self.idle_timeout:g}s) is longer than absolute_timeout "
                f"({self.absolute_timeout:g}s); the idle timeout would never apply"
            )
        object.__setattr__(self, "idle", timedelta(seconds=self.idle_timeout))
        object.__setattr__(self, "absolute", timedelta(seconds=self.absolute_timeout))
        object.__setattr__(self, "touch", timedelta(seconds=self.touch_interval))

    def expires_at(self, created_at: datetime, now: datetime, own: Any = None) -> datetime:
        """When a session active at ``now`` expires, given its own ``set_expiry`` value.

        A session's own value wins over the policy; otherwise the earlier of idle
        and absolute timeouts applies. A browser-session value (0) keeps the policy.
        """
        if isinstance(own, str):
            return datetime.fromisoformat(own)
        if isinstance(own, int | float) and own > 0:
            return now + timedelta(seconds=own)
        return min(now + self.idle, created_at + self.absolute)


def check_own_expiry(own: Any, now: datetime) -> None:
    """Raise CorruptSession unless ``own`` is a ``set_expiry`` value as this library stores
    it: seconds that fit in a datetime, or an aware ISO datetime. Anything else would fail
    at commit, turning a tampered record into a 500."""
    if own is None:
        return
    if isinstance(own, str):
        with contextlib.suppress(ValueError):
            if datetime.fromisoformat(own).tzinfo is not None:
                return
    elif isinstance(own, int | float) and not isinstance(own, bool) and own >= 0:
        with contextlib.suppress(OverflowError):
            now + timedelta(seconds=own)
            return
    raise CorruptSession(f"its own expiry {own!r} is neither seconds nor an aware datetime")


class SessionHandle(Protocol):
    """What a Session asks of whoever loaded it: read it, commit now, or load again."""

    async def load(self) -> None: ...

    async def save(self) -> None: ...

    async def reload(self) -> None: ...


class Session(dict[str, Any]):
    """A dict of session data with a user link, flash messages and lifetime controls.

    Every dict operation works as usual; changes are found by comparing the data
    at commit with what was loaded, so nested mutation is saved too.
    """

    __slots__ = (
        "_handle",
        "_user_id",
        "created_at",
        "destroy_requested",
        "expires_at",
        "key",
        "regenerate_requested",
    )

    def __init__(
        self,
        data: dict[str, Any] | None = None,
        *,
        user_id: str | None = None,
        created_at: datetime | None = None,
        expires_at: datetime | None = None,
        handle: SessionHandle | None = None,
    ) -> None:
        if data:
            super().__init__(data)
        self._user_id = None if user_id is None else str(user_id)
        self.created_at = created_at
        """When the stored record was made (aware UTC); None before the first save."""
        self.expires_at = expires_at
        """When the stored record stops being returned (aware UTC); None before the first save."""
        self.key: str | None = None
        """How stores name this session (the token's digest); None until stored."""
        self.regenerate_requested = False
        self.destroy_requested = False
        self._handle = handle

    @property
    def is_new(self) -> bool:
        """True when no stored record was loaded for this request."""
        return self.created_at is None

    @property
    def user_id(self) -> str | None:
        """The user this session belongs to; stored beside the data and indexed."""
        return self._user_id

    @user_id.setter
    def user_id(self, value: Any) -> None:
        self._user_id = None if value is None else str(value)

    def regenerate(self) -> None:
        """Issue a new ID at commit, keep the data, destroy the old record (call at login)."""
        self.regenerate_requested = True

    def destroy(self) -> None:
        """Delete the record and expire the cookie at commit; the dict is emptied (logout).

        Data set afterwards in the same request starts a new session with a new ID.
        """
        self.destroy_requested = True
        self.clear()
        self.user_id = None

    def set_expiry(self, value: int | float | timedelta | datetime | None) -> None:
        """Give this session its own lifetime, ahead of the middleware's timeouts.

        Seconds or a timedelta slide with activity; a datetime is a fixed end; 0 makes
        a browser-session cookie; None returns to the middleware's timeouts. A value in
        the past destroys the session.
        """
        if value is None:
            self.pop(EXPIRY_KEY, None)
        elif isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValueError("set_expiry() needs an aware datetime, e.g. datetime.now(UTC)")
            self[EXPIRY_KEY] = value.astimezone(UTC).isoformat()
        else:
            amount = value.total_seconds() if isinstance(value, timedelta) else float(value)
            if amount < 0:
                self.destroy()
                return
            self[EXPIRY_KEY] = amount

    @property
    def browser_session(self) -> bool:
        """True when the cookie should end with the browser (``set_expiry(0)``)."""
        return self.get(EXPIRY_KEY) == 0

    def flash(self, message: Any, category: str = "info") -> None:
        """Keep a message for the next request that calls ``pop_flashes``."""
        self.setdefault(FLASHES_KEY, []).append([category, message])

    def pop_flashes(self) -> list[tuple[str, Any]]:
        """Return pending messages as (category, message) pairs and forget them."""
        return [(category, message) for category, message in self.pop(FLASHES_KEY, [])]

    async def load(self) -> None:
        """Make sure the data has been read from the store; needed only with
        ``SessionMiddleware(autoload=False)``, and free once done."""
        await self._require_handle().load()

    async def save(self) -> None:
        """Commit to the store now rather than when the response starts."""
        await self._require_handle().save()

    async def reload(self) -> None:
        """Replace the data with what the store holds now, dropping unsaved changes."""
        await self._require_handle().reload()

    def _require_handle(self) -> SessionHandle:
        if self._handle is None:
            raise RuntimeError("this Session was not loaded by SessionMiddleware")
        return self._handle


class UnloadedSession(Session):
    """A Session whose record has not been read yet (``autoload=False``).

    Any use raises SessionNotLoaded rather than showing an empty session that is not
    really empty; ``await session.load()`` turns it into a plain Session.
    """

    __slots__ = ()

    def _not_loaded(self, *args: Any, **kwargs: Any) -> Any:
        raise SessionNotLoaded(
            "request.session has not been read yet: with SessionMiddleware(autoload=False), "
            "call 'await request.session.load()' first (FastAPI's SessionDep does it)"
        )

    __getitem__ = __setitem__ = __delitem__ = __contains__ = __iter__ = __len__ = _not_loaded
    get = keys = values = items = pop = popitem = setdefault = update = clear = _not_loaded
    copy = __or__ = __ior__ = __eq__ = __ne__ = __reversed__ = _not_loaded
    regenerate = destroy = set_expiry = flash = pop_flashes = _not_loaded
    __hash__ = None  # type: ignore[assignment]

    @property
    def is_new(self) -> bool:
        return bool(self._not_loaded())

    @property
    def user_id(self) -> str | None:
        return self._not_loaded()  # type: ignore[no-any-return]

    @user_id.setter
    def user_id(self, value: Any) -> None:
        if value is not None:  # Session.__init__ sets None before anything is loaded
            self._not_loaded()
        self._user_id = None

    def __repr__(self) -> str:
        return "<Session not loaded yet>"


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

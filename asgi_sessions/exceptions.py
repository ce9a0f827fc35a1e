"""The exceptions asgi_sessions raises, each named for what the user can do about it.

    SessionError                    base of everything below
    ├── StoreUnavailable            the store is down or timing out; answered with 503
    ├── SessionConflict             the session was ended or kept changing while a request
    │                               saved it; nothing was saved; answered with 503
    ├── SessionLimitReached         a login over max_sessions_per_user ("refuse"); answered 409
    ├── SessionExists               create() was given a key that is already taken
    ├── SessionTooLarge             serialized data is over max_size (also a ValueError)
    ├── UnserializableValue         a value cannot be serialized (also a TypeError)
    ├── CorruptSession              a stored record cannot be deserialized
    ├── SessionNotLoaded            used before ``await session.load()`` (autoload=False)
    └── InsecureConfiguration       settings unsafe for production (also a ValueError)
"""

from __future__ import annotations


class SessionError(Exception):
    """Base class of every error asgi_sessions raises on purpose."""


class StoreUnavailable(SessionError):
    """The store could not be reached or did not answer in time; retry later."""


class SessionConflict(SessionError):
    """The session was ended (logout, revoke) or kept changing while this request saved it.

    Nothing of the request was saved. The store is healthy: retrying the request is safe.
    """


class SessionLimitReached(SessionError):
    """A login would give the user more live sessions than ``max_sessions_per_user``
    allows, and the limit refuses (``session_limit="refuse"``): nothing was saved.

    Raised by ``await session.save()`` in the login handler, where the app can turn it
    into a message ("sign out on another device first"); at the middleware's own commit
    it is answered 409.
    """


class SessionExists(SessionError):
    """A record with this key already exists; create() never overwrites."""


class SessionTooLarge(SessionError, ValueError):
    """The serialized session is over the configured ``max_size``."""


class UnserializableValue(SessionError, TypeError):
    """A session value cannot be serialized; the message names its key."""


class CorruptSession(SessionError, ValueError):
    """A stored record holds bytes the serializer cannot read."""


class SessionNotLoaded(SessionError, RuntimeError):
    """The session was used before ``await request.session.load()`` (``autoload=False``)."""


class InsecureConfiguration(SessionError, ValueError):
    """The middleware settings are unsafe for the declared environment."""

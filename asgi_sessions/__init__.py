"""Server-side sessions for Starlette and FastAPI.

    app.add_middleware(SessionMiddleware, store=SQLiteStore("sessions.db"))
"""

from asgi_sessions.events import SessionEvent, SessionEvents
from asgi_sessions.exceptions import (
    CorruptSession,
    InsecureConfiguration,
    SessionConflict,
    SessionError,
    SessionExists,
    SessionLimitReached,
    SessionNotLoaded,
    SessionTooLarge,
    StoreUnavailable,
    UnserializableValue,
)
from asgi_sessions.middleware import SessionMiddleware
from asgi_sessions.persistence import create_session, revoke_user_sessions
from asgi_sessions.serializers import JSONSerializer, Serializer
from asgi_sessions.session import Session
from asgi_sessions.stores import SessionRecord, SessionStore, create_store, register_store

__version__ = "0.1.0"

__all__ = [
    "CorruptSession",
    "InsecureConfiguration",
    "JSONSerializer",
    "Serializer",
    "Session",
    "SessionConflict",
    "SessionError",
    "SessionEvent",
    "SessionEvents",
    "SessionExists",
    "SessionLimitReached",
    "SessionMiddleware",
    "SessionNotLoaded",
    "SessionRecord",
    "SessionStore",
    "SessionTooLarge",
    "StoreUnavailable",
    "UnserializableValue",
    "create_session",
    "create_store",
    "register_store",
    "revoke_user_sessions",
]

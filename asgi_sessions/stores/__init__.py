"""Session stores and ``create_store(url)``, the one place that maps a URL to a store class.

Store classes are imported on first access, so a missing optional driver only
matters to the code that asks for that store.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from asgi_sessions.stores.base import SessionRecord, SessionStore

if TYPE_CHECKING:
    from asgi_sessions.stores.memory import MemoryStore
    from asgi_sessions.stores.postgres import PostgresStore
    from asgi_sessions.stores.redis import RedisStore
    from asgi_sessions.stores.sqlite import SQLiteStore

__all__ = [
    "MemoryStore",
    "PostgresStore",
    "RedisStore",
    "SQLiteStore",
    "SessionRecord",
    "SessionStore",
    "create_store",
]

# class name -> (module, pip extra that provides its driver)
_STORES = {
    "MemoryStore": ("asgi_sessions.stores.memory", None),
    "SQLiteStore": ("asgi_sessions.stores.sqlite", "sqlite"),
    "PostgresStore": ("asgi_sessions.stores.postgres", "postgres"),
    "RedisStore": ("asgi_sessions.stores.redis", "redis"),
}

_SCHEMES = {
    "memory": "MemoryStore",
    "sqlite": "SQLiteStore",
    "postgresql": "PostgresStore",
    "postgres": "PostgresStore",
    "redis": "RedisStore",
    "rediss": "RedisStore",
    "redis+cluster": "RedisStore",
    "rediss+cluster": "RedisStore",
}


def __getattr__(name: str) -> Any:
    if name not in _STORES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, extra = _STORES[name]
    try:
        return getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            f"{name} needs the {exc.name!r} package: pip install 'asgi-server-sessions[{extra}]'"
        ) from exc


def create_store(url: str, **options: Any) -> SessionStore:
    """Build a store from a URL such as ``sqlite:///sessions.db`` or ``redis://localhost``.

    Extra keyword arguments go to the store's constructor (``table_name``, ``prefix``...).
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme not in _SCHEMES:
        known = ", ".join(f"{s}://" for s in _SCHEMES)
        raise ValueError(f"unknown session store URL {url!r}: expected one of {known}")
    store_class = __getattr__(_SCHEMES[scheme])
    store: SessionStore = store_class.from_url(url, **options)
    return store

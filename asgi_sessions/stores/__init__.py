"""Session stores and ``create_store(url)``, the one place that maps a URL to a store class.

Store classes are imported on first access, so a missing optional driver only
matters to the code that asks for that store. Other packages add URL schemes
through the ``asgi_sessions.stores`` entry-point group (name = scheme, value =
``module:Class``), or at run time with ``register_store(scheme, cls)``.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from asgi_sessions.stores._urls import redact_url
from asgi_sessions.stores.base import SessionRecord, SessionStore

if TYPE_CHECKING:
    from asgi_sessions.stores.memory import MemoryStore
    from asgi_sessions.stores.postgres import PostgresStore
    from asgi_sessions.stores.redis import RedisStore
    from asgi_sessions.stores.sqlalchemy import SQLAlchemyStore
    from asgi_sessions.stores.sqlite import SQLiteStore
    from asgi_sessions.stores.tiered import TieredStore

__all__ = [
    "ENTRY_POINT_GROUP",
    "MemoryStore",
    "PostgresStore",
    "RedisStore",
    "SQLAlchemyStore",
    "SQLiteStore",
    "SessionRecord",
    "SessionStore",
    "TieredStore",
    "create_store",
    "redact_url",
    "register_store",
]

ENTRY_POINT_GROUP = "asgi_sessions.stores"
"""The entry-point group in which installed packages name their store for a URL scheme."""

# class name -> (module, pip extra that provides its driver)
_STORES = {
    "MemoryStore": ("asgi_sessions.stores.memory", None),
    "SQLiteStore": ("asgi_sessions.stores.sqlite", "sqlite"),
    "PostgresStore": ("asgi_sessions.stores.postgres", "postgres"),
    "RedisStore": ("asgi_sessions.stores.redis", "redis"),
    "SQLAlchemyStore": ("asgi_sessions.stores.sqlalchemy", "sqlalchemy"),
    "TieredStore": ("asgi_sessions.stores.tiered", None),
}

_SCHEMES = {
    "memory": "MemoryStore",
    "sqlite": "SQLiteStore",
    "postgresql": "PostgresStore",
    "postgres": "PostgresStore",
    "redis": "RedisStore",
    "rediss": "RedisStore",
    "unix": "RedisStore",
    "redis+cluster": "RedisStore",
    "rediss+cluster": "RedisStore",
    "redis+sentinel": "RedisStore",
    "rediss+sentinel": "RedisStore",
    "mysql+asyncmy": "SQLAlchemyStore",
    "mariadb+asyncmy": "SQLAlchemyStore",
    "mysql+aiomysql": "SQLAlchemyStore",
    "mariadb+aiomysql": "SQLAlchemyStore",
    "postgresql+asyncpg": "SQLAlchemyStore",
    "sqlite+aiosqlite": "SQLAlchemyStore",
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


_registered: dict[str, type[SessionStore]] = {}
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")


def register_store(scheme: str, store_class: type[SessionStore]) -> None:
    """Let ``create_store`` build ``store_class`` from ``scheme://`` URLs, in this process.

    Installed packages are better registered through the ``asgi_sessions.stores``
    entry-point group, which the command line sees too. A built-in scheme, or one
    registered to another class, is refused with a ValueError.
    """
    scheme = scheme.lower()
    if not _SCHEME.fullmatch(scheme):
        raise ValueError(f"{scheme!r} is not a URL scheme: use letters, digits, '+', '-', '.'")
    if not (isinstance(store_class, type) and issubclass(store_class, SessionStore)):
        raise TypeError(f"register_store needs a SessionStore subclass, got {store_class!r}")
    if scheme in _SCHEMES:
        raise ValueError(f"{scheme}:// is built in ({_SCHEMES[scheme]}); pick another scheme")
    taken = _registered.setdefault(scheme, store_class)
    if taken is not store_class:
        raise ValueError(f"{scheme}:// is already registered to {taken.__qualname__}")


def _installed(scheme: str | None = None) -> list[EntryPoint]:
    """The installed entry points for ``scheme`` (every one when None)."""
    found = entry_points(group=ENTRY_POINT_GROUP)
    return [each for each in found if scheme is None or each.name.lower() == scheme]


def _store_class(scheme: str, url: str) -> type[SessionStore]:
    """The class for ``scheme``: built in, registered, or named by an installed entry point."""
    if scheme in _SCHEMES:
        built_in: type[SessionStore] = __getattr__(_SCHEMES[scheme])
        return built_in
    if scheme in _registered:
        return _registered[scheme]
    claims = {each.value: each for each in _installed(scheme)}
    if len(claims) > 1:
        raise ValueError(
            f"{scheme}:// is claimed by several installed stores ({', '.join(sorted(claims))});"
            " uninstall one, or call register_store to choose"
        )
    if not claims:
        known = [*_SCHEMES, *_registered, *(each.name for each in _installed())]
        expected = ", ".join(f"{each}://" for each in dict.fromkeys(known))
        raise ValueError(
            f"unknown session store URL {redact_url(url)!r}: expected one of {expected}"
        )
    [claim] = claims.values()
    where = f"{claim.value} (entry point {claim.name!r} of {ENTRY_POINT_GROUP})"
    try:
        loaded = claim.load()
    except ImportError as exc:
        raise ImportError(f"cannot import the store for {scheme}://, {where}: {exc}") from exc
    if not (isinstance(loaded, type) and issubclass(loaded, SessionStore)):
        raise TypeError(f"the store for {scheme}://, {where}, is not a SessionStore subclass")
    return loaded


def create_store(url: str, **options: Any) -> SessionStore:
    """Build a store from a URL such as ``sqlite:///sessions.db`` or ``redis://localhost``.

    The scheme picks the class: a built-in store, one given to ``register_store``, or
    one an installed package names in the ``asgi_sessions.stores`` entry-point group.

    Store options may be given as keyword arguments or in the query string
    (``postgresql://db/app?table_name=web_sessions``, ``redis://cache?prefix=app:``).
    Other query parameters stay in the URL for the driver if the store class lists
    them in ``driver_url_parameters`` (``sslmode``, ``db``, ...); any other name is
    refused at once with a ValueError that names it and suggests the closest match.
    """
    parts = urlsplit(url)
    store_class = _store_class(parts.scheme.lower(), url)
    accepted = _query_options(store_class)
    passed_on = frozenset(getattr(store_class, "driver_url_parameters", ()))
    driver_query = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in accepted:
            options.setdefault(name, _typed(name, value, accepted[name]))
        elif name in passed_on:
            driver_query.append((name, value))
        else:
            raise ValueError(_unknown_option(name, url, store_class.__name__, accepted, passed_on))
    if parts.query:  # rebuilt by hand: urlunsplit would turn sqlite://// into sqlite://
        base = url.partition("?")[0]
        url = f"{base}?{urlencode(driver_query)}" if driver_query else base
    store: SessionStore = store_class.from_url(url, **options)
    return store


def _query_options(store_class: type[SessionStore]) -> dict[str, Any]:
    """The constructor's keyword-only options a query string can set, with their defaults.

    Those whose default is a string, number or bool, or None for a ``str | None``; not
    objects such as ``clock``, ``pool`` or ``client``.
    """
    options = {}
    for name, parameter in inspect.signature(store_class).parameters.items():
        default = parameter.default
        if parameter.kind is not parameter.KEYWORD_ONLY:
            continue
        if isinstance(default, str | int | float) or (
            default is None and re.search(r"\bstr\b", str(parameter.annotation))
        ):
            options[name] = default
    return options


def _unknown_option(
    name: str, url: str, store_name: str, options: Iterable[str], passed_on: Iterable[str]
) -> str:
    """Say which query parameter is unknown, what the store takes, and the likeliest fix."""
    known = sorted(options)
    driver = sorted(passed_on)
    close = difflib.get_close_matches(name, [*known, *driver], n=1)
    guess = f"; did you mean {close[0]!r}?" if close else "."
    takes = f"{store_name} options: {', '.join(known) or '(none)'}"
    passes = f"driver parameters: {', '.join(driver) or '(none)'}"
    return f"unknown option {name!r} in {redact_url(url)!r}{guess} {takes}; {passes}"


def _typed(name: str, value: str, default: Any) -> Any:
    """Convert a query-string option to the type of its default."""
    if isinstance(default, bool):
        if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
            raise ValueError(f"store option {name}={value!r} must be true or false")
        return value.lower() in ("1", "true", "yes")
    if isinstance(default, int | float):
        try:
            return type(default)(value)
        except ValueError:
            raise ValueError(f"store option {name}={value!r} must be a number") from None
    return value

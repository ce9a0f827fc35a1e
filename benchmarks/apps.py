"""The app variants measured side by side: one Starlette app, three routes, and a
different session layer (or none) in front of it.

Every variant serves the same routes with the same handlers:

- ``/untouched`` never looks at the session;
- ``/read`` reads one key (a counter);
- ``/write`` increments that counter.

Building a variant does no I/O (stores connect lazily), so ``serve.py`` can build
the same apps inside a uvicorn worker.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from asgi_sessions import SessionMiddleware
from asgi_sessions.sealing import KeyRing, generate_key
from asgi_sessions.session import Session
from asgi_sessions.stores.base import SessionStore
from asgi_sessions.stores.memory import MemoryStore
from asgi_sessions.telemetry import Telemetry
from asgi_sessions.testing.recording import RecordingStore
from benchmarks import servers
from benchmarks.settings import Env

LIFETIME = timedelta(days=14)
"""Session lifetime for every variant (Starlette's default ``max_age``)."""

OURS = (
    "ours-memory",
    "ours-sqlite",
    "ours-postgres",
    "ours-redis",
    "ours-mysql",
    "ours-tiered",
)
"""``ours-mysql`` is SQLAlchemyStore on MariaDB; ``ours-tiered`` is TieredStore, Redis in
front of PostgreSQL."""
LAZY = ("ours-sqlite-lazy", "ours-postgres-lazy", "ours-redis-lazy")
"""Ours with ``autoload=False``: the session is read only where a route loads it."""
SEALED = ("ours-redis-sealed",)
"""Ours with data sealed at rest (``encryption=KeyRing(...)``): the cost of encryption."""
SENTINEL = ("ours-sentinel", "ours-sentinel-wait")
"""RedisStore on the primary Redis Sentinel names (a deployment the run starts itself:
a primary, a replica, three Sentinels), and with ``wait_for_replicas=1``: the cost of
waiting for a replica on every write."""
OTEL = ("ours-memory-otel",)
"""Ours with ``telemetry=Telemetry()`` and no OpenTelemetry SDK installed, as an app that
ships the instrumentation but has not turned exporting on: the API's cost alone."""
PEERS = ("starlette-cookie", "starsessions-memory", "starsessions-redis")
VARIANTS = ("bare", *PEERS, *OURS, *LAZY, *SEALED, *SENTINEL, *OTEL)
NEEDS = {  # variant -> server it needs
    "starsessions-redis": "redis",
    "ours-postgres": "postgres",
    "ours-redis": "redis",
    "ours-postgres-lazy": "postgres",
    "ours-redis-lazy": "redis",
    "ours-redis-sealed": "redis",
    "ours-sentinel": "sentinel",
    "ours-sentinel-wait": "sentinel",
    "ours-mysql": "mysql",
    "ours-tiered": "postgres+redis",
}

SessionOf = Callable[[Request], Awaitable[MutableMapping[str, Any]]]


async def scope_session(request: Request) -> MutableMapping[str, Any]:
    """The session a middleware put in the scope."""
    session: MutableMapping[str, Any] = request.session
    return session


async def loaded_session(request: Request) -> MutableMapping[str, Any]:
    """The session, read first, as routes do under ``autoload=False``."""
    session: Session = request.scope["session"]
    await session.load()
    return session


async def _no_session(request: Request) -> MutableMapping[str, Any]:
    return {}


def session_routes(session_of: SessionOf) -> list[Route]:
    """The three measured routes, reaching the session through ``session_of``."""

    async def untouched(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def read(request: Request) -> Response:
        session = await session_of(request)
        return PlainTextResponse(str(session.get("counter", 0)))

    async def write(request: Request) -> Response:
        session = await session_of(request)
        session["counter"] = session.get("counter", 0) + 1
        return PlainTextResponse(str(session["counter"]))

    return [Route("/untouched", untouched), Route("/read", read), Route("/write", write)]


@dataclass
class Built:
    """An app ready to serve, and how to remove what it left on the servers."""

    name: str
    app: ASGIApp
    store: SessionStore | None = None
    cleanups: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)

    async def close(self) -> None:
        """Close connections, then drop the tables and keys this variant made."""
        for cleanup in self.cleanups:
            await cleanup()


def our_store(
    kind: str, env: Env, label: str, *, wait_for_replicas: int = 0
) -> tuple[SessionStore, list[Any]]:
    """One of our stores in its own namespace, and the coroutines that remove it.

    ``sentinel`` starts the run's own Sentinel deployment the first time (the only
    variant whose build does I/O, so it is not served by uvicorn workers).
    """
    namespace = env.namespace(label)
    if kind == "memory":
        return MemoryStore(), []
    if kind == "sqlite":
        from asgi_sessions.stores.sqlite import SQLiteStore

        sqlite = SQLiteStore(os.path.join(env.tmpdir, f"{namespace}.db"), table_name=namespace)
        return sqlite, [sqlite.close]
    if kind == "postgres":
        from asgi_sessions.stores.postgres import PostgresStore

        assert env.postgres_dsn is not None
        dsn = env.postgres_dsn
        postgres = PostgresStore(dsn, table_name=namespace)
        return postgres, [postgres.close, lambda: servers.drop_table(dsn, namespace)]
    if kind == "redis":
        from asgi_sessions.stores.redis import RedisStore

        assert env.redis_url is not None
        url = env.redis_url
        redis = RedisStore(url, prefix=f"{namespace}:")
        return redis, [redis.close, lambda: servers.clear_prefix(url, f"{namespace}:")]
    if kind == "sentinel":
        from asgi_sessions.stores.redis import RedisStore

        sentinel = RedisStore(
            servers.sentinel_url(env),
            prefix=f"{namespace}:",
            wait_for_replicas=wait_for_replicas,
        )
        return sentinel, [sentinel.clear, sentinel.close]
    if kind == "mysql":
        from asgi_sessions.stores.sqlalchemy import SQLAlchemyStore

        assert env.mysql_url is not None
        mysql_url = env.mysql_url
        mysql = SQLAlchemyStore(mysql_url, table_name=namespace)
        return mysql, [mysql.close, lambda: servers.drop_mysql_table(mysql_url, namespace)]
    if kind == "tiered":
        from asgi_sessions.stores.tiered import TieredStore

        primary, primary_cleanups = our_store("postgres", env, f"{label}-primary")
        cache, cache_cleanups = our_store("redis", env, f"{label}-cache")
        return TieredStore(primary, cache), [*cache_cleanups, *primary_cleanups]
    raise ValueError(f"unknown store {kind!r}")


def build(name: str, env: Env, *, record: bool = False) -> Built:
    """Build variant ``name``; with ``record``, our store is wrapped in a RecordingStore."""
    if name == "bare":
        return Built(name, Starlette(routes=session_routes(_no_session)))
    if name == "starlette-cookie":
        from starlette.middleware.sessions import SessionMiddleware as CookieSessions

        middleware = Middleware(
            CookieSessions, secret_key="bench-secret", max_age=int(LIFETIME.total_seconds())
        )
        app = Starlette(routes=session_routes(scope_session), middleware=[middleware])
        return Built(name, app)
    if name.startswith("starsessions-"):
        return _starsessions(name, env)
    if name.startswith("ours-"):
        label = f"{name}-rec" if record else name
        kind, _, mode = name.removeprefix("ours-").partition("-")
        store, cleanups = our_store(
            kind, env, label, wait_for_replicas=1 if mode == "wait" else 0
        )
        if record:
            store = RecordingStore(store)
        lazy = mode == "lazy"
        sealed = KeyRing({"bench": generate_key()}) if mode == "sealed" else None
        middleware = Middleware(
            SessionMiddleware,
            store=store,
            max_age=LIFETIME,
            autoload=not lazy,
            encryption=sealed,
            telemetry=Telemetry() if mode == "otel" else None,
        )
        routes = session_routes(loaded_session if lazy else scope_session)
        app = Starlette(routes=routes, middleware=[middleware])
        return Built(name, app, store, cleanups)
    raise ValueError(f"unknown variant {name!r}")


def _starsessions(name: str, env: Env) -> Built:
    """starsessions 2.x, loading the session in the handlers that use it (its fastest way:
    ``SessionAutoloadMiddleware`` would also load it for ``/untouched``)."""
    from starsessions import InMemoryStore, load_session
    from starsessions import SessionMiddleware as StarSessions

    async def session_of(request: Request) -> MutableMapping[str, Any]:
        await load_session(request)
        session: MutableMapping[str, Any] = request.session
        return session

    cleanups: list[Callable[[], Awaitable[Any]]] = []
    if name == "starsessions-memory":
        store: Any = InMemoryStore()
    else:
        from redis.asyncio import Redis
        from starsessions.stores.redis import RedisStore as StarRedisStore

        assert env.redis_url is not None
        url, prefix = env.redis_url, f"{env.namespace(name)}:"
        connection = Redis.from_url(url)
        store = StarRedisStore(connection=connection, prefix=prefix)
        cleanups += [connection.aclose, lambda: servers.clear_prefix(url, prefix)]
    middleware = Middleware(
        StarSessions,
        store=store,
        lifetime=LIFETIME,
        cookie_name="session",
        cookie_https_only=False,
    )
    app = Starlette(routes=session_routes(session_of), middleware=[middleware])
    return Built(name, app, None, cleanups)


def available(name: str, env: Env) -> bool:
    """Whether the server ``name`` needs is reachable in this run."""
    need = NEEDS.get(name) or NEEDS.get(f"ours-{name.removeprefix('floor-')}")
    servers_up = {
        "postgres": env.postgres_dsn is not None,
        "redis": env.redis_url is not None,
        "mysql": env.mysql_url is not None,
        "sentinel": servers.can_start_redis(),
    }
    return need is None or all(servers_up[each] for each in need.split("+"))

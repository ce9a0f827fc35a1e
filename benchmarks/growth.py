"""Read latency as the number of live sessions grows (1k, 100k, 1M by default).

Sessions are written in bulk with each driver, not through the API, under tokens
``growth<i>`` whose keys are their SHA-256 digests, exactly as the middleware would
store them. At each level, random sessions are read with ``store.read`` and with a
full ``/read`` request through the middleware.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware

from asgi_sessions import SessionMiddleware
from asgi_sessions.stores.base import SessionRecord, SessionStore
from asgi_sessions.stores.memory import MemoryStore
from asgi_sessions.stores.postgres import PostgresStore
from asgi_sessions.stores.redis import RedisStore
from asgi_sessions.stores.sqlite import SQLiteStore
from asgi_sessions.tokens import key_for
from benchmarks import load
from benchmarks.apps import LIFETIME, our_store, scope_session, session_routes
from benchmarks.latency import percentile
from benchmarks.settings import ROW_COLUMNS, Env

DATA = b'{"counter":1}'
CHUNK = 5000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# KEYS: record names; ARGV: data, created_at, expires_at (µs), ttl (ms). Written in
# chunks so that no one script holds the shared server for long.
_FILL = """
for _, name in ipairs(KEYS) do
  redis.call('HSET', name, 'data', ARGV[1], 'created_at', ARGV[2], 'expires_at', ARGV[3],
             'version', '1')
  redis.call('PEXPIRE', name, ARGV[4])
end
return #KEYS
"""


def token(i: int) -> str:
    """The token of bulk session ``i``: well formed (26 base64url characters)."""
    return f"growth{i:020d}"


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _window() -> tuple[datetime, datetime]:
    """created_at and expires_at of a session made now, as the middleware would set them."""
    now = datetime.now(UTC).replace(microsecond=0)
    return now, now + LIFETIME


def _sqlite_rows(start: int, stop: int) -> Iterator[tuple[Any, ...]]:
    created, expires = (_micros(moment) for moment in _window())
    for i in range(start, stop):
        yield key_for(token(i)), DATA, None, created, expires, 1


def _fill_sqlite(store: SQLiteStore, start: int, stop: int) -> None:
    connection = sqlite3.connect(store.path, timeout=30)
    try:
        with connection:
            connection.executemany(
                f'INSERT INTO "{store.table_name}" ({ROW_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)',
                _sqlite_rows(start, stop),
            )
    finally:
        connection.close()


async def _fill_postgres(store: PostgresStore, start: int, stop: int) -> None:
    import asyncpg

    created, expires = _window()
    connection = await asyncpg.connect(store.dsn)
    try:
        await connection.execute(
            f'INSERT INTO "{store.table_name}" SELECT'
            " encode(sha256(convert_to('growth' || lpad(i::text, 20, '0'), 'UTF8')), 'hex'),"
            " $1, NULL, $2, $3, 1 FROM generate_series($4::bigint, $5::bigint) AS i",
            DATA,
            created,
            expires,
            start,
            stop - 1,
            timeout=600,
        )
        await connection.execute(f'ANALYZE "{store.table_name}"', timeout=600)
    finally:
        await connection.close()


async def _fill_redis(url: str, prefix: str, start: int, stop: int) -> None:
    from redis.asyncio import Redis

    created, expires = (_micros(moment) for moment in _window())
    client = Redis.from_url(url)
    try:
        fill = client.register_script(_FILL)
        for first in range(start, stop, CHUNK):
            names = [
                f"{prefix}s:{key_for(token(i))}" for i in range(first, min(stop, first + CHUNK))
            ]
            await fill(names, [DATA, created, expires, int(LIFETIME.total_seconds() * 1000)])
    finally:
        await client.aclose()


async def _fill(store: SessionStore, env: Env, start: int, stop: int) -> None:
    """Add bulk sessions ``start`` .. ``stop - 1`` with the store's own driver."""
    if isinstance(store, MemoryStore):
        created, expires = _window()
        for i in range(start, stop):
            key = key_for(token(i))
            store._records[key] = SessionRecord(key, DATA, None, created, expires)
    elif isinstance(store, SQLiteStore):
        await asyncio.to_thread(_fill_sqlite, store, start, stop)
    elif isinstance(store, PostgresStore):
        await _fill_postgres(store, start, stop)
    else:
        assert isinstance(store, RedisStore) and env.redis_url is not None
        await _fill_redis(env.redis_url, store.prefix, start, stop)


async def _level(store: SessionStore, app: Any, sessions: int, samples: int) -> dict[str, Any]:
    """Latency of reading random sessions among ``sessions``: the store, then a request."""
    rng = random.Random(sessions)
    picks = [rng.randrange(sessions) for _ in range(samples)]
    keys = [key_for(token(i)) for i in picks]
    for key in keys[:50]:  # warm-up
        await store.read(key)
    reads, misses = [], 0
    for key in keys:
        start = time.perf_counter()
        record = await store.read(key)
        reads.append(time.perf_counter() - start)
        misses += record is None
    clients = [load.Client(token(i).encode()) for i in picks[: samples // 2]]
    requests = await load.direct_latencies(app, "/read", clients)
    errors = sum(client.errors for client in clients)
    return {
        "sessions": sessions,
        "read_p50_us": round(percentile(reads, 0.5) * 1e6, 1),
        "read_p99_us": round(percentile(reads, 0.99) * 1e6, 1),
        "request_p50_us": round(percentile(requests, 0.5) * 1e6, 1),
        "request_p99_us": round(percentile(requests, 0.99) * 1e6, 1),
        "misses": misses + errors,
    }


async def _grow(env: Env, kind: str) -> list[dict[str, Any]]:
    store, cleanups = our_store(kind, env, f"growth-{kind}")
    # No sliding-expiry write while measuring: a read-only request is one round trip.
    middleware = Middleware(SessionMiddleware, store=store, max_age=LIFETIME, touch_interval=3600)
    app = Starlette(routes=session_routes(scope_session), middleware=[middleware])
    rows, have = [], 0
    try:
        await store.count()  # connect and create the table
        for level in env.size.growth_levels:
            started = time.perf_counter()
            await _fill(store, env, have, level)
            fill_seconds = time.perf_counter() - started
            have = level
            row = await _level(store, app, level, env.size.samples)
            rows.append({"store": kind, **row, "fill_seconds": round(fill_seconds, 2)})
    finally:
        if isinstance(store, MemoryStore):
            await store.clear()
        elif isinstance(store, RedisStore) and env.redis_url is not None:
            await _unlink(env.redis_url, store.prefix, have)
        for cleanup in cleanups:
            await cleanup()
    return rows


async def _unlink(url: str, prefix: str, count: int) -> None:
    """Delete the bulk sessions by name (faster than a SCAN over the shared server)."""
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        for first in range(0, count, CHUNK):
            names = [
                f"{prefix}s:{key_for(token(i))}" for i in range(first, min(count, first + CHUNK))
            ]
            await client.unlink(*names)
    finally:
        await client.aclose()


async def run(env: Env) -> list[dict[str, Any]]:
    """Grow every available store through the levels; one row per store and level."""
    rows = []
    for kind in ("memory", "sqlite", "postgres", "redis"):
        if (kind == "postgres" and env.postgres_dsn is None) or (
            kind == "redis" and env.redis_url is None
        ):
            continue
        rows += await _grow(env, kind)
    return rows

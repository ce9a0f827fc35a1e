"""Sweeping a large number of expired rows from each SQL store, and what that does to
concurrent reads of live sessions.

The expired rows are written in bulk with the driver (not through the store API);
a few live sessions are made through the API. Readers time ``store.read`` while
idle and again while ``cleanup_expired_sessions()`` runs in the same event loop,
as the middleware's background cleanup would.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from asgi_sessions import create_session
from asgi_sessions.stores.postgres import PostgresStore
from asgi_sessions.stores.sqlite import SQLiteStore
from asgi_sessions.tokens import key_for
from benchmarks.apps import our_store
from benchmarks.latency import read_for, read_until, summary_ms
from benchmarks.settings import ROW_COLUMNS, Env

READERS = 4
BATCH_SIZE = 1000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _sqlite_rows(rows: int, created: int, expires: int) -> Iterator[tuple[Any, ...]]:
    for i in range(rows):
        key = hashlib.sha256(b"expired%d" % i).hexdigest()
        yield key, b"{}", None, created, expires, 1


def _fill_sqlite(path: str, table: str, rows: int) -> None:
    """Insert ``rows`` expired records in one transaction, with sqlite3 directly."""
    now = datetime.now(UTC)
    created, expires = _micros(now - timedelta(days=2)), _micros(now - timedelta(days=1))
    connection = sqlite3.connect(path, timeout=30)
    try:
        with connection:
            connection.executemany(
                f'INSERT INTO "{table}" ({ROW_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)',
                _sqlite_rows(rows, created, expires),
            )
    finally:
        connection.close()


async def _fill_postgres(dsn: str, table: str, rows: int) -> None:
    """Insert ``rows`` expired records with one INSERT ... SELECT generate_series."""
    import asyncpg

    now = datetime.now(UTC)
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(
            f"INSERT INTO \"{table}\" SELECT encode(sha256(int8send(i)), 'hex'), '\\x7b7d',"
            " NULL, $1, $2, 1 FROM generate_series(1, $3) AS i",
            now - timedelta(days=2),
            now - timedelta(days=1),
            rows,
            timeout=600,
        )
        await connection.execute(f'ANALYZE "{table}"', timeout=600)
    finally:
        await connection.close()


async def _sweep(env: Env, kind: str) -> dict[str, Any]:
    rows = env.size.cleanup_rows
    store, cleanups = our_store(kind, env, f"sweep-{kind}")
    try:
        keys = [key_for(await create_session(store, {"counter": 1})) for _ in range(READERS)]
        started = time.perf_counter()
        if isinstance(store, SQLiteStore):
            await asyncio.to_thread(_fill_sqlite, store.path, store.table_name, rows)
        else:
            assert isinstance(store, PostgresStore) and store.dsn is not None
            await _fill_postgres(store.dsn, store.table_name, rows)
        fill_seconds = time.perf_counter() - started
        idle = await read_for(store, keys, env.size.samples)
        stop, during = asyncio.Event(), list[float]()
        readers = asyncio.create_task(read_until(store, keys, stop, during))
        started = time.perf_counter()
        removed = await store.cleanup_expired_sessions(batch_size=BATCH_SIZE)
        seconds = time.perf_counter() - started
        stop.set()
        await readers
        if await store.count() != READERS:
            env.notes.append(f"cleanup {kind}: live sessions were lost during the sweep")
        return {
            "store": kind,
            "rows": rows,
            "removed": removed,
            "fill_seconds": round(fill_seconds, 2),
            "seconds": round(seconds, 2),
            "rows_per_s": round(removed / seconds) if seconds else 0,
            "idle": summary_ms(idle),
            "during": summary_ms(during),
        }
    finally:
        for cleanup in cleanups:
            await cleanup()


async def run(env: Env) -> list[dict[str, Any]]:
    """Sweep ``cleanup_rows`` expired rows from SQLite and PostgreSQL."""
    results = [await _sweep(env, "sqlite")]
    if env.postgres_dsn is not None:
        results.append(await _sweep(env, "postgres"))
    for path in os.listdir(env.tmpdir):
        if "sweep" in path:
            os.remove(os.path.join(env.tmpdir, path))
    return results

"""A million expired rows swept by two workers at once while a live session is being read.

SQLite: both workers may delete, but together they remove every expired row, without an
error. PostgreSQL: the advisory lock lets one worker sweep at a time; the other steps
aside. Read latency during the sweep and at rest is printed and kept in
tests/artifacts/faults.json; it is measured, not asserted.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from datetime import UTC, datetime, timedelta
from itertools import groupby

import anyio
import anyio.to_thread
import asyncpg
import pytest

from asgi_sessions.stores import create_store
from asgi_sessions.stores.base import SessionStore
from asgi_sessions.stores.postgres import PostgresStore
from asgi_sessions.stores.sqlite import SQLiteStore
from asgi_sessions.testing.clock import FrozenClock
from asgi_sessions.testing.store_suite import new_record
from faults.traffic import save

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
pytest_plugins = ["faults.stores"]

ROWS = 1_000_000
IDLE_READS = 300
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


async def fill(store: SessionStore, expired_at: datetime) -> None:
    """Write ROWS expired rows straight into the store's table, server-side."""
    await store.count()  # the store creates its table
    if isinstance(store, SQLiteStore):
        micros = (expired_at - EPOCH) // timedelta(microseconds=1)
        sql = (
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
            f' INSERT INTO "{store.table_name}" (key, data, user_id, created_at, expires_at,'
            " version) SELECT printf('%064x', i), x'7b7d', NULL, ?, ?, 1 FROM n"
        )

        def insert() -> None:
            with closing(sqlite3.connect(store.path)) as connection, connection:
                connection.execute(sql, (ROWS, micros, micros))

        await anyio.to_thread.run_sync(insert)
    else:
        assert isinstance(store, PostgresStore) and store.dsn is not None
        conn = await asyncpg.connect(store.dsn)
        try:
            await conn.execute(
                f'INSERT INTO "{store.table_name}" SELECT md5(g::text), $3, NULL, $2, $2, 1 '
                "FROM generate_series(1, $1) g",
                ROWS,
                expired_at,
                b"{}",
            )
        finally:
            await conn.close()


def percentiles(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "reads": len(ordered),
        "p50_ms": round(ordered[len(ordered) // 2] * 1000, 3),
        "p99_ms": round(ordered[int(len(ordered) * 0.99)] * 1000, 3),
    }


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_two_workers_sweep_a_million_expired_rows_while_reads_go_on(
    backend: str, store_url: str, clock: FrozenClock
) -> None:
    reader, *workers = stores = [create_store(store_url, clock=clock) for _ in range(3)]
    live = new_record(clock, lifetime=24 * 3600)
    progress: list[tuple[int, int]] = []  # (worker, running total) in the order reported
    removed = [0, 0]
    idle: list[float] = []
    during: list[float] = []
    try:
        await reader.create(live)
        built = time.perf_counter()
        await fill(reader, clock() - timedelta(hours=1))
        built = time.perf_counter() - built

        async def read(into: list[float]) -> None:
            started = time.perf_counter()
            assert await reader.read(live.key) == live, "the live session is read throughout"
            into.append(time.perf_counter() - started)

        for _ in range(IDLE_READS):
            await read(idle)

        async def sweep(number: int) -> None:
            def report(total: int) -> None:
                progress.append((number, total))

            store = workers[number]
            removed[number] = await store.cleanup_expired_sessions(progress=report)

        done = anyio.Event()

        async def sweep_with_two_workers() -> None:
            async with anyio.create_task_group() as sweepers:
                sweepers.start_soon(sweep, 0)
                sweepers.start_soon(sweep, 1)
            done.set()

        swept = time.perf_counter()
        with anyio.fail_after(120):
            async with anyio.create_task_group() as group:
                group.start_soon(sweep_with_two_workers)
                while not done.is_set():
                    await read(during)
        swept = time.perf_counter() - swept
        assert sum(removed) == ROWS
        assert await reader.count() == 1
        assert await reader.cleanup_expired_sessions() == 0
    finally:
        for store in stores:
            await store.close()

    turns = [worker for worker, _ in groupby(worker for worker, _ in progress)]
    if backend == "postgres":
        assert len(turns) <= 2, "one worker sweeps at a time: the other steps aside for good"
    figures = {
        "rows": ROWS,
        "build_seconds": round(built, 2),
        "sweep_seconds": round(swept, 2),
        "removed_per_worker": removed,
        "turns": len(turns),
        "idle": percentiles(idle),
        "during": percentiles(during),
    }
    print(f"\n[sweep] {backend}: {figures}")
    save("sweeps", backend, figures)

"""Batched calls to an aiosqlite connection's thread: each caller gets its own answer."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiosqlite
import pytest

from asgi_sessions.stores._thread_batches import ThreadBatches

pytestmark = pytest.mark.anyio


@pytest.fixture
async def batches(tmp_path: Path) -> AsyncIterator[ThreadBatches]:
    connection = await aiosqlite.connect(tmp_path / "batches.db", isolation_level=None)
    await connection.execute("CREATE TABLE t (n INTEGER)")
    try:
        yield ThreadBatches(connection)
    finally:
        await connection.close()


def _select(value: int) -> Callable[[sqlite3.Connection], int]:
    return lambda raw: int(raw.execute("SELECT ?", (value,)).fetchone()[0])


async def test_concurrent_calls_share_trips_and_each_gets_its_own_answer(
    batches: ThreadBatches,
) -> None:
    answers = await asyncio.gather(*(batches.run(_select(n)) for n in range(200)))
    assert answers == list(range(200))
    assert 1 <= batches.trips < 200


async def test_a_lone_call_takes_one_trip(batches: ThreadBatches) -> None:
    for n in range(3):
        assert await batches.run(_select(n)) == n
    assert batches.trips == 3


async def test_an_error_goes_to_its_caller_only(batches: ThreadBatches) -> None:
    def broken(raw: sqlite3.Connection) -> object:
        return raw.execute("SELECT * FROM missing").fetchall()

    results = await asyncio.gather(
        batches.run(_select(1)),
        batches.run(broken),
        batches.run(_select(3)),
        return_exceptions=True,
    )
    assert results[0] == 1 and results[2] == 3
    assert isinstance(results[1], sqlite3.OperationalError)
    assert batches.trips == 1


async def test_a_cancelled_caller_leaves_the_others_answered_and_its_call_still_runs(
    batches: ThreadBatches,
) -> None:
    def insert(raw: sqlite3.Connection) -> int:
        return raw.execute("INSERT INTO t VALUES (1)").rowcount

    given_up = asyncio.ensure_future(batches.run(insert))
    kept = batches.run(_select(5))
    given_up.cancel()
    assert await asyncio.wait_for(kept, 5) == 5  # not left waiting behind the cancelled one
    assert given_up.cancelled()
    count = batches.run(lambda raw: int(raw.execute("SELECT count(*) FROM t").fetchone()[0]))
    assert await count == 1


async def test_calls_keep_their_order_among_the_connections_other_calls(
    batches: ThreadBatches,
) -> None:
    first = batches.run(lambda raw: raw.execute("INSERT INTO t VALUES (1)").rowcount)
    await batches.connection.execute("INSERT INTO t VALUES (2)")
    assert await first == 1
    rows = await batches.connection.execute_fetchall("SELECT n FROM t ORDER BY rowid")
    assert [row[0] for row in rows] == [1, 2]


async def test_a_closed_connection_refuses_calls_as_aiosqlite_does(tmp_path: Path) -> None:
    connection = await aiosqlite.connect(tmp_path / "closed.db")
    batches = ThreadBatches(connection)
    pending = batches.run(_select(1))
    await connection.close()
    assert await pending == 1  # sent before the close: answered
    with pytest.raises(ValueError, match="closed"):
        batches.run(_select(2))

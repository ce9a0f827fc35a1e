"""What only the SQLite store promises: its file, its schema, its URLs, its batches, its loops.

The behaviour every store shares is checked by the conformance suite in tests/conformance/.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from asgi_sessions.exceptions import StoreUnavailable
from asgi_sessions.stores import create_store
from asgi_sessions.stores.base import SessionRecord
from asgi_sessions.stores.sqlite import SQLiteStore
from asgi_sessions.testing.clock import FrozenClock

MICROSECOND = timedelta(microseconds=1)


@pytest.fixture
def db_path(tmp_path: Path, namespace: str) -> Path:
    return tmp_path / f"{namespace}.db"


@pytest.fixture
async def store(db_path: Path, clock: FrozenClock) -> AsyncIterator[SQLiteStore]:
    async with SQLiteStore(db_path, clock=clock) as store:
        yield store


def make_record(clock: FrozenClock, **changes: Any) -> SessionRecord:
    record = SessionRecord(
        key="a" * 64,
        data=b'{"cart": []}',
        user_id="alice",
        created_at=clock.now + 123_457 * MICROSECOND,
        expires_at=clock.now + timedelta(hours=1) + MICROSECOND,
    )
    return dataclasses.replace(record, **changes)


def query(path: Path, sql: str) -> list[tuple[object, ...]]:
    """Look at the file the way another process would, with the standard library."""
    with closing(sqlite3.connect(path)) as connection:
        return connection.execute(sql).fetchall()


def worker_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if "_connection_worker_thread" in t.name}


WRITER = """
import asyncio, sys
from datetime import UTC, datetime, timedelta
from asgi_sessions.stores.base import SessionRecord
from asgi_sessions.stores.sqlite import SQLiteStore

now = datetime.now(UTC)
record = SessionRecord("b" * 64, b"from another process", None, now, now + timedelta(days=1))
store = SQLiteStore(sys.argv[1])  # never closed: the process must still exit
asyncio.run(store.create(record))
"""


def test_records_survive_the_process_that_wrote_them(db_path: Path) -> None:
    writer = subprocess.run(
        [sys.executable, "-c", WRITER, str(db_path)], timeout=60, capture_output=True
    )
    assert writer.returncode == 0, writer.stderr.decode()

    async def read_back() -> SessionRecord | None:
        async with SQLiteStore(db_path) as store:
            return await store.read("b" * 64)

    record = asyncio.run(read_back())
    assert record is not None
    assert record.data == b"from another process"


@pytest.mark.anyio
async def test_file_uses_write_ahead_logging(store: SQLiteStore, db_path: Path) -> None:
    await store.count()
    assert query(db_path, "PRAGMA journal_mode") == [("wal",)]


@pytest.mark.anyio
async def test_stores_opening_a_new_file_at_once_all_get_in(tmp_path: Path) -> None:
    # Switching a new file to WAL fails at once, busy timeout or not, while another
    # connection is switching it too; the store retries instead of failing the request.
    counts: list[int] = []

    async def count(store: SQLiteStore) -> None:
        async with store:
            counts.append(await store.count())

    for attempt in range(20):
        async with anyio.create_task_group() as tasks:
            for _ in range(6):
                tasks.start_soon(count, SQLiteStore(tmp_path / f"{attempt}.db"))
    assert counts == [0] * 120


def test_constructor_touches_no_file(db_path: Path) -> None:
    SQLiteStore(db_path)
    assert not db_path.exists()


@pytest.mark.anyio
async def test_table_name_holds_the_rows_with_indexes_and_integer_times(
    db_path: Path, clock: FrozenClock, namespace: str
) -> None:
    record = make_record(clock)
    async with SQLiteStore(db_path, table_name=namespace, clock=clock) as store:
        await store.create(record)
    rows = query(db_path, f"SELECT key, typeof(created_at), expires_at FROM {namespace}")
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert rows == [(record.key, "integer", (record.expires_at - epoch) // MICROSECOND)]
    indexes = [row[1] for row in query(db_path, f"PRAGMA index_list({namespace})")]
    leading = {query(db_path, f"PRAGMA index_info({name})")[0][2] for name in indexes}
    assert leading >= {"expires_at", "user_id"}


@pytest.mark.anyio
async def test_two_tables_in_one_file_are_separate(db_path: Path, clock: FrozenClock) -> None:
    record = make_record(clock)
    async with SQLiteStore(db_path, table_name="one", clock=clock) as one:
        await one.create(record)
        async with SQLiteStore(db_path, table_name="two", clock=clock) as two:
            assert await two.read(record.key) is None
            assert await one.read(record.key) == record


@pytest.mark.parametrize(
    "table_name", ["", "1sessions", "sessions; DROP TABLE users", 'a"b', "a-b", "x" * 64]
)
def test_table_name_must_be_a_plain_identifier(table_name: str) -> None:
    with pytest.raises(ValueError, match="table_name"):
        SQLiteStore(table_name=table_name)


@pytest.mark.anyio
async def test_missing_table_without_create_table_names_the_fix(
    db_path: Path, namespace: str
) -> None:
    async with SQLiteStore(db_path, table_name=namespace, create_table=False) as store:
        with pytest.raises(StoreUnavailable, match=rf"no table '{namespace}'.*create_table=True"):
            await store.read("a" * 64)
    assert query(db_path, "SELECT name FROM sqlite_master") == []


@pytest.mark.anyio
async def test_unopenable_file_is_store_unavailable_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "missing-directory" / "sessions.db"
    async with SQLiteStore(path) as store:
        with pytest.raises(StoreUnavailable, match=r"missing-directory.*directory exists"):
            await store.count()


@pytest.mark.anyio
async def test_without_create_file_a_missing_file_is_not_created(
    db_path: Path, clock: FrozenClock
) -> None:
    async with SQLiteStore(db_path, create_file=False) as store:
        with pytest.raises(StoreUnavailable, match=f"^no such database file: {db_path}$"):
            await store.count()
        with pytest.raises(StoreUnavailable, match="no such database file"):
            await store.cleanup_expired_sessions()
    assert not await anyio.Path(db_path).exists()


@pytest.mark.anyio
async def test_without_create_file_an_existing_file_is_used(
    db_path: Path, clock: FrozenClock
) -> None:
    async with SQLiteStore(db_path, clock=clock) as creator:
        await creator.create(make_record(clock))
    url = f"sqlite:///{db_path}?create_file=false"

    async with create_store(url, clock=clock) as store:
        assert isinstance(store, SQLiteStore)
        assert store.create_file is False
        assert await store.read("a" * 64) == make_record(clock)
        await store.destroy("a" * 64)
    assert query(db_path, "SELECT count(*) FROM sessions") == [(0,)]


@pytest.mark.anyio
async def test_locked_database_is_store_unavailable(
    store: SQLiteStore, db_path: Path, clock: FrozenClock
) -> None:
    await store.count()
    async with SQLiteStore(db_path, clock=clock, timeout=0.05) as impatient:
        with closing(sqlite3.connect(db_path, isolation_level=None)) as blocker:
            blocker.execute("BEGIN EXCLUSIVE")
            with pytest.raises(StoreUnavailable, match=r"locked.*timeout=0.05"):
                await impatient.create(make_record(clock))
        await impatient.create(make_record(clock))


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///sessions.db", os.path.abspath("sessions.db")),
        ("sqlite:///data/my%20sessions.db", os.path.abspath("data/my sessions.db")),
        ("sqlite:////var/lib/app/sessions.db", "/var/lib/app/sessions.db"),
        ("sqlite://", ":memory:"),
        ("sqlite:///:memory:", ":memory:"),
        ("sqlite://:memory:", ":memory:"),
    ],
)
def test_from_url_follows_the_sqlalchemy_slashes(url: str, path: str) -> None:
    store = SQLiteStore.from_url(url, table_name="web")
    assert (store.path, store.table_name) == (path, "web")


@pytest.mark.parametrize(
    "url", ["sqlite://host/sessions.db", "sqlite:///", "sqlite:///s.db?timeout=2", "file:///s.db"]
)
def test_from_url_rejects_what_it_cannot_read(url: str) -> None:
    with pytest.raises(ValueError, match="sqlite:///"):
        SQLiteStore.from_url(url)


@pytest.mark.anyio
async def test_create_store_builds_a_working_sqlite_store(
    db_path: Path, clock: FrozenClock
) -> None:
    store = create_store(f"sqlite:///{db_path}", clock=clock)
    assert isinstance(store, SQLiteStore)
    async with store:
        await store.create(make_record(clock))
    assert query(db_path, "SELECT count(*) FROM sessions") == [(1,)]


@pytest.mark.anyio
async def test_memory_database_lasts_until_close(clock: FrozenClock) -> None:
    record = make_record(clock)
    async with SQLiteStore(":memory:", clock=clock) as store:
        await store.create(record)
        assert await store.read(record.key) == record
        await store.close()
        assert await store.read(record.key) is None


@pytest.mark.anyio
async def test_cleanup_deletes_in_batches_while_reads_go_on(
    store: SQLiteStore, db_path: Path, clock: FrozenClock
) -> None:
    live = make_record(clock)
    await store.create(live)
    expired_at = (clock.now - store.cleanup_grace).timestamp() * 1_000_000
    with closing(sqlite3.connect(db_path)) as connection, connection:
        connection.executemany(
            "INSERT INTO sessions (key, data, user_id, created_at, expires_at, version)"
            " VALUES (?, x'00', NULL, 0, ?, 1)",
            ((f"{n:064x}", int(expired_at)) for n in range(25_000)),
        )
    totals: list[int] = []
    first_batch_done = anyio.Event()
    read_result: list[tuple[SessionRecord | None, int]] = []

    def progress(total: int) -> None:
        totals.append(total)
        first_batch_done.set()

    async def read_during_cleanup() -> None:
        await first_batch_done.wait()
        read_result.append((await store.read(live.key), len(totals)))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(read_during_cleanup)
        removed = await store.cleanup_expired_sessions(batch_size=1000, progress=progress)

    assert removed == 25_000
    assert totals == list(range(1000, 25_001, 1000))
    assert read_result[0][0] == live
    assert read_result[0][1] < len(totals)
    assert await store.count() == 1


@pytest.mark.filterwarnings("error")
def test_the_connection_of_a_finished_event_loop_is_stopped(
    db_path: Path, clock: FrozenClock
) -> None:
    """Each loop gets its own aiosqlite worker thread; none outlives the store's use."""
    before = worker_threads()
    store = SQLiteStore(db_path, clock=clock)
    record = make_record(clock)
    asyncio.run(store.create(record))
    assert asyncio.run(store.read(record.key)) == record
    asyncio.run(store.close())
    for thread in worker_threads() - before:
        thread.join(timeout=5)
        assert not thread.is_alive(), "a connection from an earlier loop was never stopped"

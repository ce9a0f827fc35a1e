"""What PostgresStore does beyond the shared contract: its table, pool, locks and failures."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any, TypeAlias

import anyio
import asyncpg
import pytest

from asgi_sessions.exceptions import StoreUnavailable
from asgi_sessions.stores import PostgresStore, create_store
from asgi_sessions.stores.base import SessionRecord
from asgi_sessions.testing.clock import FrozenClock

pytestmark = pytest.mark.anyio

Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record]"


def record(key: str, clock: FrozenClock, *, lifetime: float = 3600) -> SessionRecord:
    now = clock()
    return SessionRecord(key, b"{}", None, now, now + timedelta(seconds=lifetime))


async def drop(dsn: str, table: str, *, schema: str | None = None) -> None:
    """Remove what a test created: its schema if it made one, else its table."""
    conn = await asyncpg.connect(dsn)
    try:
        if schema is not None:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        else:
            await conn.execute(f'DROP TABLE IF EXISTS "{table}"')
    finally:
        await conn.close()


async def insert_rows(dsn: str, table: str, count: int, expires_at: datetime) -> None:
    """Fill the table server-side, far faster than one create() per row."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            f'INSERT INTO "{table}" SELECT md5(g::text), $3, NULL, $2, $2, 1 '
            "FROM generate_series(1, $1) g",
            count,
            expires_at,
            b"{}",
        )
    finally:
        await conn.close()


async def raw_count(dsn: str, table: str) -> int:
    """Rows in the table, expired or not, as the server sees them."""
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(f'SELECT count(*) FROM "{table}"'))
    finally:
        await conn.close()


async def blocked_backend(conn: Connection, table: str) -> int:
    """Wait until some backend waits for a lock on ``table``; return its pid."""
    with anyio.fail_after(10):
        while True:
            pid = await conn.fetchval(
                "SELECT pid FROM pg_locks WHERE relation = to_regclass($1) AND NOT granted",
                f'"{table}"',
            )
            if pid is not None:
                return int(pid)
            await anyio.sleep(0.01)


@pytest.fixture
async def store(
    postgres_dsn: str, namespace: str, clock: FrozenClock
) -> AsyncIterator[PostgresStore]:
    async with PostgresStore(postgres_dsn, table_name=namespace, clock=clock) as store:
        yield store
    await drop(postgres_dsn, namespace)


@pytest.fixture
async def locker(postgres_dsn: str) -> AsyncIterator[Connection]:
    """A second connection that can lock what the store needs."""
    conn = await asyncpg.connect(postgres_dsn)
    yield conn
    await conn.close()


async def test_creates_table_and_indexes_in_the_given_schema(
    postgres_dsn: str, namespace: str, clock: FrozenClock, locker: Connection
) -> None:
    store = PostgresStore(postgres_dsn, schema=namespace, table_name="web_sessions", clock=clock)
    try:
        await store.create(record("k1", clock))
        assert (await store.read("k1")) == record("k1", clock)
        columns = await locker.fetch(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = $1 AND table_name = 'web_sessions' ORDER BY ordinal_position",
            namespace,
        )
        indexes = await locker.fetch(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = $1", namespace
        )
    finally:
        await store.close()
        await drop(postgres_dsn, "web_sessions", schema=namespace)
    assert [tuple(c) for c in columns] == [
        ("key", "text"),
        ("data", "bytea"),
        ("user_id", "text"),
        ("created_at", "timestamp with time zone"),
        ("expires_at", "timestamp with time zone"),
        ("version", "bigint"),
        ("user_agent", "text"),
        ("ip", "text"),
        ("last_seen_at", "timestamp with time zone"),
    ]
    definitions = " ".join(row["indexdef"] for row in indexes)
    assert "(key)" in definitions
    assert "(expires_at)" in definitions
    assert "(user_id) WHERE (user_id IS NOT NULL)" in definitions


@pytest.mark.parametrize("name", ["sessions; DROP TABLE users", "1st", "a-b", "x" * 64, ""])
def test_refuses_a_table_name_that_is_not_a_plain_identifier(name: str) -> None:
    with pytest.raises(ValueError, match="plain SQL identifier"):
        PostgresStore("postgresql://127.0.0.1/test", table_name=name)
    with pytest.raises(ValueError, match="plain SQL identifier"):
        PostgresStore("postgresql://127.0.0.1/test", schema=name)


def test_takes_a_dsn_or_a_pool_but_not_both() -> None:
    with pytest.raises(TypeError, match="either a dsn or a pool"):
        PostgresStore()


async def test_uses_a_given_pool_and_leaves_it_open(
    postgres_dsn: str, namespace: str, clock: FrozenClock
) -> None:
    async with asyncpg.create_pool(postgres_dsn, min_size=1, max_size=2) as pool:
        try:
            async with PostgresStore(pool=pool, table_name=namespace, clock=clock) as store:
                await store.create(record("k1", clock))
                assert await store.count() == 1
            assert await pool.fetchval("SELECT 1") == 1
            async with PostgresStore(pool=pool, table_name=namespace, clock=clock) as again:
                assert await again.read("k1") == record("k1", clock)
        finally:
            await drop(postgres_dsn, namespace)


async def test_many_stores_starting_together_create_the_table_once(
    postgres_dsn: str, namespace: str
) -> None:
    stores = [PostgresStore(postgres_dsn, table_name=namespace, max_size=1) for _ in range(6)]
    try:
        counts = await asyncio.gather(*(store.count() for store in stores))
    finally:
        await asyncio.gather(*(store.close() for store in stores))
        await drop(postgres_dsn, namespace)
    assert counts == [0] * 6


async def test_missing_table_with_create_table_off_says_how_to_fix_it(
    postgres_dsn: str, namespace: str
) -> None:
    async with PostgresStore(postgres_dsn, table_name=namespace, create_table=False) as store:
        with pytest.raises(StoreUnavailable, match=r"does not exist.*create_table=True"):
            await store.read("k1")


async def test_sweep_takes_a_lock_per_batch_and_yields_to_its_holder(
    store: PostgresStore, postgres_dsn: str, namespace: str, clock: FrozenClock, locker: Connection
) -> None:
    await store.count()  # the table exists before the locker blocks it
    await insert_rows(postgres_dsn, namespace, 20, clock() - store.cleanup_grace)
    await locker.execute(f'BEGIN; LOCK TABLE "{namespace}" IN ACCESS EXCLUSIVE MODE')
    async with anyio.create_task_group() as tg:
        tg.start_soon(store.cleanup_expired_sessions)
        pid = await blocked_backend(locker, namespace)
        held = await locker.fetchrow(
            "SELECT classid, objid FROM pg_locks "
            "WHERE locktype = 'advisory' AND pid = $1 AND granted",
            pid,
        )
        await locker.execute("ROLLBACK")  # lets the sweep finish
    assert held is not None, "the sweep holds an advisory lock while it deletes"
    assert await raw_count(postgres_dsn, namespace) == 0

    key = int.from_bytes(
        (held["classid"] << 32 | held["objid"]).to_bytes(8, "big"), "big", signed=True
    )
    await insert_rows(postgres_dsn, namespace, 20, clock() - store.cleanup_grace)
    async with locker.transaction():
        await locker.execute("SELECT pg_advisory_xact_lock($1)", key)
        assert await store.cleanup_expired_sessions() == 0
    assert await raw_count(postgres_dsn, namespace) == 20
    assert await store.cleanup_expired_sessions() == 20


@pytest.mark.parametrize(
    "call",
    [
        lambda store: store.read("k1"),
        lambda store: store.cleanup_expired_sessions(),
    ],
    ids=["read", "cleanup"],
)
async def test_a_query_cancelled_while_the_server_holds_it_frees_a_one_connection_pool(
    postgres_dsn: str,
    namespace: str,
    clock: FrozenClock,
    locker: Connection,
    call: Callable[[PostgresStore], Coroutine[Any, Any, object]],
) -> None:
    store = PostgresStore(postgres_dsn, table_name=namespace, clock=clock, min_size=1, max_size=1)
    try:
        await store.create(record("k1", clock))
        async with locker.transaction():
            await locker.execute(f'LOCK TABLE "{namespace}" IN ACCESS EXCLUSIVE MODE')
            async with anyio.create_task_group() as tg:
                tg.start_soon(call, store)
                await blocked_backend(locker, namespace)
                tg.cancel_scope.cancel()
        with anyio.fail_after(10):
            assert await store.read("k1") == record("k1", clock)
            assert await store.update(record("k1", clock), expected_version=1)
            assert await store.count() == 1
    finally:
        await store.close()
        await drop(postgres_dsn, namespace)


async def test_slow_command_becomes_store_unavailable_and_the_store_recovers(
    postgres_dsn: str, namespace: str, clock: FrozenClock, locker: Connection
) -> None:
    store = PostgresStore(postgres_dsn, table_name=namespace, clock=clock, command_timeout=0.2)
    try:
        await store.create(record("k1", clock))
        async with locker.transaction():
            await locker.execute(f'LOCK TABLE "{namespace}" IN ACCESS EXCLUSIVE MODE')
            with pytest.raises(StoreUnavailable, match="did not answer in time"):
                await store.read("k1")
        assert await store.read("k1") == record("k1", clock)
    finally:
        await store.close()
        await drop(postgres_dsn, namespace)


async def test_unreachable_server_is_store_unavailable() -> None:
    store = PostgresStore("postgresql://postgres@127.0.0.1:1/test", connect_timeout=1)
    with anyio.fail_after(10), pytest.raises(StoreUnavailable, match="check that the server"):
        await store.read("k1")
    await store.close()


async def test_server_that_never_answers_is_store_unavailable() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        store = PostgresStore(f"postgresql://postgres@127.0.0.1:{port}/test", connect_timeout=0.3)
        with anyio.fail_after(10), pytest.raises(StoreUnavailable, match="did not answer in time"):
            await store.count()
        await store.close()


async def test_create_store_builds_it_from_a_postgres_url(
    postgres_dsn: str, namespace: str, clock: FrozenClock
) -> None:
    for url in (postgres_dsn, postgres_dsn.replace("postgresql://", "postgres://", 1)):
        store = create_store(url, table_name=namespace, clock=clock)
        assert isinstance(store, PostgresStore)
        async with store:
            assert await store.count() == 0
    await drop(postgres_dsn, namespace)
    with pytest.raises(ValueError, match="postgresql://"):
        PostgresStore.from_url("mysql://127.0.0.1/test")


@pytest.mark.slow
async def test_a_million_rows_stream_and_sweep(
    store: PostgresStore, postgres_dsn: str, namespace: str, clock: FrozenClock
) -> None:
    await store.count()
    await insert_rows(postgres_dsn, namespace, 1_000_000, clock() + timedelta(hours=1))
    streamed = 0
    async for _ in store.all():
        streamed += 1
    assert streamed == 1_000_000
    clock.advance(hours=2)
    totals: list[int] = []
    assert await store.cleanup_expired_sessions(batch_size=10_000, progress=totals.append) == (
        1_000_000
    )
    assert totals == list(range(10_000, 1_000_001, 10_000)), "one report per batch that removed"


async def test_concurrent_reads_share_one_query_and_each_gets_its_own_record(
    store: PostgresStore, clock: FrozenClock
) -> None:
    keys = [f"{n:064x}" for n in range(1, 41)]
    for n, key in enumerate(keys):
        await store.create(record(key, clock, lifetime=60 if n % 4 else 7200))
    clock.advance(minutes=5)  # every fourth record is still live
    missing = f"{999:064x}"
    asked = [*keys, keys[0], missing]
    found = await asyncio.gather(*(store.read(key) for key in asked))
    got = [None if found_record is None else found_record.key for found_record in found]
    live = [key if n % 4 == 0 else None for n, key in enumerate(keys)]
    assert got == [*live, keys[0], None]
    reads = store._reads[asyncio.get_running_loop()]
    assert 1 <= reads.batches < len(asked)

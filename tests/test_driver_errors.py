"""What a driver raises never leaks out of a store: an outage is StoreUnavailable, and a
value the server refuses is a ValueError, never StoreUnavailable (a healthy store must
never be reported as down).

The values go to real servers through the stores. The plumbing under them
(``PostgresConnections``, ``RedisConnection``) is also handed, while a real connection
is in use, the other things a driver may raise under a failover, such as a plain
AttributeError from a connection another task closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from redis.exceptions import ConnectionError, DataError, LockError

from asgi_sessions.exceptions import SessionExists, SessionTooLarge, StoreUnavailable
from asgi_sessions.stores._asyncpg import PostgresConnections
from asgi_sessions.stores._redis_client import RedisConnection
from asgi_sessions.stores.postgres import PostgresStore
from asgi_sessions.stores.redis import RedisStore
from asgi_sessions.testing.clock import FrozenClock
from asgi_sessions.testing.store_suite import new_record

pytestmark = pytest.mark.anyio

NUL = "user\x00one"
SURROGATE = "user\udc00one"


@pytest.fixture
async def postgres(
    postgres_dsn: str, namespace: str, clock: FrozenClock
) -> AsyncIterator[PostgresStore]:
    store = PostgresStore(postgres_dsn, table_name=namespace, clock=clock)
    try:
        yield store
    finally:
        await store.close()
        conn = await asyncpg.connect(postgres_dsn)
        try:
            await conn.execute(f'DROP TABLE IF EXISTS "{namespace}"')
        finally:
            await conn.close()


@pytest.fixture
async def connections(postgres_dsn: str) -> AsyncIterator[PostgresConnections]:
    """The plumbing under PostgresStore, on the real server, for statements of the test's own."""
    opened = PostgresConnections(
        postgres_dsn,
        None,
        table="none",
        connect_timeout=5.0,
        command_timeout=5.0,
        min_size=1,
        max_size=2,
    )
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def redis_connection(redis_url: str) -> AsyncIterator[RedisConnection]:
    """The plumbing under RedisStore, on the real server."""
    opened = RedisConnection(
        redis_url, None, connect_timeout=5.0, socket_timeout=5.0, max_connections=2
    )
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def redis(redis_url: str, namespace: str, clock: FrozenClock) -> AsyncIterator[RedisStore]:
    store = RedisStore(redis_url, prefix=f"{namespace}:", clock=clock)
    try:
        yield store
        await store.clear()
    finally:
        await store.close()


@pytest.mark.parametrize("user_id", [NUL, SURROGATE], ids=["nul", "lone-surrogate"])
async def test_postgres_refusing_a_user_id_is_a_value_error_naming_it_and_writes_nothing(
    postgres: PostgresStore, clock: FrozenClock, user_id: str
) -> None:
    record = new_record(clock, user_id=user_id)
    with pytest.raises(ValueError, match=r"NUL|UTF-8") as caught:  # refused before any I/O
        await postgres.create(record)
    assert not isinstance(caught.value, StoreUnavailable)
    assert await postgres.read(record.key) is None
    assert await postgres.count() == 0, "the store is up and answers"


@pytest.mark.parametrize("text", [NUL, SURROGATE], ids=["nul", "lone-surrogate"])
async def test_a_value_postgres_refuses_is_a_value_error_naming_the_argument(
    connections: PostgresConnections, text: str
) -> None:
    with pytest.raises(ValueError, match=r"PostgreSQL refused query argument \$1") as caught:
        await connections.fetchval("SELECT $1::text", text)
    assert not isinstance(caught.value, StoreUnavailable)


async def test_postgres_refusing_a_value_too_long_for_its_column_is_a_value_error(
    connections: PostgresConnections, namespace: str
) -> None:
    table = f'"{namespace}_short"'
    await connections.execute(f"CREATE TABLE {table} (v varchar(3))")
    try:
        with pytest.raises(ValueError, match="StringDataRightTruncationError"):
            await connections.execute(f"INSERT INTO {table} VALUES ($1)", "abcd")
    finally:
        await connections.execute(f"DROP TABLE {table}")


async def test_redis_keeps_a_user_id_with_nul_exactly(
    redis: RedisStore, clock: FrozenClock
) -> None:
    record = new_record(clock, user_id=NUL)
    await redis.create(record)
    assert await redis.read(record.key) == record
    assert await redis.user_sessions(NUL) == [record]


async def test_redis_refusing_text_it_cannot_encode_is_a_value_error_and_writes_nothing(
    redis: RedisStore, clock: FrozenClock
) -> None:
    record = new_record(clock, user_id=SURROGATE)
    with pytest.raises(ValueError, match="UTF-8") as caught:  # refused before any I/O
        await redis.create(record)
    assert not isinstance(caught.value, StoreUnavailable)
    assert await redis.read(record.key) is None


async def test_a_value_redis_py_refuses_to_send_is_a_value_error(
    redis_connection: RedisConnection,
) -> None:
    with pytest.raises(ValueError, match="Redis refused a value") as caught:
        async with redis_connection.use() as client:
            await client.set("asgi-sessions-test:never", None)  # type: ignore[arg-type]
    assert isinstance(caught.value.__cause__, DataError)


DRIVER_FAILURES: list[Exception] = [
    AttributeError("'NoneType' object has no attribute 'writelines'"),
    TypeError("unsupported operand"),
    KeyError("node"),
    RuntimeError("Event loop is closed"),
    OSError("Network is unreachable"),
]
OURS: list[BaseException] = [
    SessionExists("taken"),
    SessionTooLarge("too big"),
    ValueError("batch_size must be at least 1"),
    asyncio.CancelledError(),
]


@pytest.mark.parametrize("error", DRIVER_FAILURES, ids=lambda e: type(e).__name__)
async def test_any_other_error_while_using_a_connection_is_store_unavailable(
    error: Exception, connections: PostgresConnections, redis_connection: RedisConnection
) -> None:
    with pytest.raises(StoreUnavailable) as from_redis:
        async with redis_connection.use():
            raise error
    with pytest.raises(StoreUnavailable) as from_postgres:
        async with connections.connection():
            raise error
    assert from_redis.value.__cause__ is error
    assert from_postgres.value.__cause__ is error


@pytest.mark.parametrize(
    "error",
    [ConnectionError("Connection closed by server."), LockError("also a ValueError")],
    ids=lambda e: type(e).__name__,
)
async def test_every_redis_py_error_is_store_unavailable_even_one_that_is_a_value_error(
    error: Exception, redis_connection: RedisConnection
) -> None:
    with pytest.raises(StoreUnavailable):
        async with redis_connection.use():
            raise error


@pytest.mark.parametrize("error", OURS, ids=lambda e: type(e).__name__)
async def test_our_own_errors_and_cancellation_pass_the_boundary_unchanged(
    error: BaseException, connections: PostgresConnections, redis_connection: RedisConnection
) -> None:
    with pytest.raises(type(error)) as from_redis:
        async with redis_connection.use():
            raise error
    with pytest.raises(type(error)) as from_postgres:
        async with connections.connection():
            raise error
    assert from_redis.value is error
    assert from_postgres.value is error

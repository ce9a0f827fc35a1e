"""Both conformance suites on TieredStore: SQLite or PostgreSQL as primary, Redis as cache,
each test in its own file, table and key prefix."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest

from asgi_sessions.stores.base import Clock, SessionStore
from asgi_sessions.stores.postgres import PostgresStore
from asgi_sessions.stores.redis import RedisStore
from asgi_sessions.stores.sqlite import SQLiteStore
from asgi_sessions.stores.tiered import TieredStore
from asgi_sessions.testing import MiddlewareConformance, StoreConformance


@pytest.fixture(params=["sqlite", "postgresql"])
def make_primary(
    request: pytest.FixtureRequest, tmp_path: Path, namespace: str
) -> Callable[[Clock], SessionStore]:
    """A factory of primary stores over this test's own file or table."""
    if request.param == "sqlite":
        path = tmp_path / f"{namespace}.db"
        return lambda clock: SQLiteStore(path, clock=clock)
    dsn: str = request.getfixturevalue("postgres_dsn")
    return lambda clock: PostgresStore(dsn, table_name=namespace, clock=clock)


class TieredStores:
    @pytest.fixture
    async def make_store(
        self,
        make_primary: Callable[[Clock], SessionStore],
        redis_url: str,
        postgres_dsn: str,
        namespace: str,
    ) -> AsyncIterator[Callable[[Clock], SessionStore]]:
        prefix = f"{namespace}:"
        yield lambda clock: TieredStore(
            make_primary(clock), RedisStore(redis_url, prefix=prefix, clock=clock), clock=clock
        )
        async with RedisStore(redis_url, prefix=prefix) as cache:
            await cache.clear()
        conn = await asyncpg.connect(postgres_dsn)
        try:
            await conn.execute(f'DROP TABLE IF EXISTS "{namespace}"')
        finally:
            await conn.close()


class TestTieredStore(TieredStores, StoreConformance):
    @pytest.fixture
    def make_unavailable_store(
        self, unresponsive_address: tuple[str, int]
    ) -> Callable[[Clock], SessionStore]:
        host, port = unresponsive_address
        return lambda clock: TieredStore(
            PostgresStore(f"postgresql://postgres@{host}:{port}/test", connect_timeout=0.2),
            RedisStore(f"redis://{host}:{port}", connect_timeout=0.2, socket_timeout=0.2),
            clock=clock,
        )


class TestTieredMiddleware(TieredStores, MiddlewareConformance):
    pass

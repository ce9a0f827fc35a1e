"""Both conformance suites on PostgresStore, one fresh table per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest

from asgi_sessions.stores.base import Clock, SessionStore
from asgi_sessions.stores.postgres import PostgresStore
from asgi_sessions.testing import MiddlewareConformance, StoreConformance


class PostgresStores:
    @pytest.fixture
    async def make_store(
        self, postgres_dsn: str, namespace: str
    ) -> AsyncIterator[Callable[[Clock], SessionStore]]:
        yield lambda clock: PostgresStore(postgres_dsn, table_name=namespace, clock=clock)
        conn = await asyncpg.connect(postgres_dsn)
        try:
            await conn.execute(f'DROP TABLE IF EXISTS "{namespace}"')
        finally:
            await conn.close()


class TestPostgresStore(PostgresStores, StoreConformance):
    @pytest.fixture
    def make_unavailable_store(
        self, unresponsive_address: tuple[str, int]
    ) -> Callable[[Clock], SessionStore]:
        host, port = unresponsive_address
        dsn = f"postgresql://postgres@{host}:{port}/test"
        return lambda clock: PostgresStore(dsn, clock=clock, connect_timeout=0.2)


class TestPostgresMiddleware(PostgresStores, MiddlewareConformance):
    pass

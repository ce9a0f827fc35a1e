"""Both conformance suites on SQLAlchemyStore over MariaDB, PostgreSQL and SQLite, one fresh
table per test, dropped afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from asgi_sessions.stores.base import Clock, SessionStore
from asgi_sessions.stores.sqlalchemy import SQLAlchemyStore
from asgi_sessions.testing import MiddlewareConformance, StoreConformance

DIALECTS = ["mariadb", "postgresql", "sqlite"]


@pytest.fixture(params=DIALECTS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A SQLAlchemy async URL of a real database of each dialect."""
    if request.param == "mariadb":
        url: str = request.getfixturevalue("mysql_url")
        return url
    if request.param == "postgresql":
        dsn: str = request.getfixturevalue("postgres_dsn")
        return dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"sqlite+aiosqlite:///{tmp_path / 'sessions.db'}"


class SQLAlchemyStores:
    @pytest.fixture
    async def make_store(
        self, database_url: str, namespace: str
    ) -> AsyncIterator[Callable[[Clock], SessionStore]]:
        yield lambda clock: SQLAlchemyStore(database_url, table_name=namespace, clock=clock)
        if database_url.startswith("sqlite"):
            return  # a file of this test's own, gone with its tmp_path
        metadata = SQLAlchemyStore(database_url, table_name=namespace).metadata
        engine = create_async_engine(database_url)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(metadata.drop_all)
        finally:
            await engine.dispose()


class TestSQLAlchemyStore(SQLAlchemyStores, StoreConformance):
    @pytest.fixture
    def make_unavailable_store(
        self, database_url: str, unresponsive_address: tuple[str, int]
    ) -> Callable[[Clock], SessionStore]:
        host, port = unresponsive_address
        scheme = database_url.partition("://")[0]
        if scheme.startswith("sqlite"):
            url = f"{scheme}:////no-such-directory/sessions.db"
        else:
            url = f"{scheme}://nobody@{host}:{port}/test"
        return lambda clock: SQLAlchemyStore(url, clock=clock, timeout=0.3)


class TestSQLAlchemyMiddleware(SQLAlchemyStores, MiddlewareConformance):
    pass

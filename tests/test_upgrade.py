"""A table made before devices were tracked keeps working: the store adds the columns.

The table is made as the previous release made it (the current table without the
device columns), holding a session written then; the new store, opened on it with
``create_table=True`` (the default), reads that session, writes device fields, and
serves a second process opening the same table at the same moment.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import anyio
import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from asgi_sessions.stores.base import SessionStore
from asgi_sessions.stores.postgres import PostgresStore
from asgi_sessions.stores.sqlalchemy import SQLAlchemyStore
from asgi_sessions.stores.sqlite import SQLiteStore
from asgi_sessions.testing import FrozenClock
from asgi_sessions.testing.store_suite import new_record

pytestmark = pytest.mark.anyio

DEVICE_COLUMNS = ("user_agent", "ip", "last_seen_at")
Opener = Callable[[], SessionStore]


@pytest.fixture(params=["sqlite", "postgres", "sqlalchemy-mariadb", "sqlalchemy-sqlite"])
async def old_table(
    request: pytest.FixtureRequest, tmp_path: Path, namespace: str
) -> AsyncIterator[tuple[Opener, Callable[[str], object]]]:
    """A store opener on one table, and a way to run SQL on that table's database."""
    kind: str = request.param
    if kind == "sqlite":
        path = tmp_path / "sessions.db"

        async def sql(statement: str) -> None:
            import aiosqlite

            async with aiosqlite.connect(path) as db:
                await db.execute(statement.format(t=namespace))
                await db.commit()

        yield (lambda: SQLiteStore(path, table_name=namespace)), sql
    elif kind == "postgres":
        dsn: str = request.getfixturevalue("postgres_dsn")

        async def sql(statement: str) -> None:
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute(statement.format(t=f'"{namespace}"'))
            finally:
                await conn.close()

        yield (lambda: PostgresStore(dsn, table_name=namespace)), sql
        await sql("DROP TABLE IF EXISTS {t}")
    else:
        url = (
            request.getfixturevalue("mysql_url")
            if kind == "sqlalchemy-mariadb"
            else f"sqlite+aiosqlite:///{tmp_path / 'sessions.db'}"
        )

        async def sql(statement: str) -> None:
            engine = create_async_engine(url)
            try:
                async with engine.begin() as conn:
                    await conn.execute(text(statement.format(t=namespace)))
            finally:
                await engine.dispose()

        yield (lambda: SQLAlchemyStore(url, table_name=namespace)), sql
        await sql("DROP TABLE IF EXISTS {t}")


async def test_a_table_of_the_previous_release_gains_the_device_columns_and_keeps_its_sessions(
    old_table: tuple[Opener, Callable[[str], object]],
) -> None:
    open_store, sql = old_table
    clock = FrozenClock()
    old = new_record(clock, user_id="ada")
    async with open_store() as store:
        await store.create(old)
    for column in DEVICE_COLUMNS:  # the previous release's table
        await sql(f"ALTER TABLE {{t}} DROP COLUMN {column}")  # type: ignore[misc]

    async def open_and_read() -> None:
        async with open_store() as store:
            assert await store.read(old.key) is not None

    async with anyio.create_task_group() as group:  # two processes starting at once
        group.start_soon(open_and_read)
        group.start_soon(open_and_read)

    async with open_store() as store:
        found = await store.read(old.key)
        assert found is not None
        assert dataclasses.replace(found, created_at=old.created_at) == dataclasses.replace(
            old, created_at=old.created_at
        )
        seen = clock() + timedelta(seconds=1)
        tracked = dataclasses.replace(
            old, user_agent="curl/8.5.0", ip="192.0.2.0", last_seen_at=seen
        )
        assert await store.update(tracked, expected_version=1)
        assert await store.user_sessions("ada") == [dataclasses.replace(tracked, version=2)]

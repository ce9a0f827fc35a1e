"""SQLAlchemyStore beyond the conformance suites: the app's own engine, the table it
exposes for Alembic, URLs, and the MySQL path without ``DELETE ... RETURNING``."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import anyio.to_thread
import pytest
from sqlalchemy import inspect, make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from asgi_sessions import create_store
from asgi_sessions.stores.sqlalchemy import SQLAlchemyStore
from asgi_sessions.testing.clock import FrozenClock
from asgi_sessions.testing.store_suite import new_record

pytestmark = pytest.mark.anyio


@pytest.fixture
async def mysql_engine(mysql_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(mysql_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def dropped(mysql_url: str, namespace: str) -> AsyncIterator[str]:
    """``namespace`` as a MariaDB table name, dropped after the test."""
    yield namespace
    engine = create_async_engine(mysql_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP TABLE IF EXISTS `{namespace}`"))
    finally:
        await engine.dispose()


async def test_the_apps_engine_is_used_and_never_disposed_by_close(
    mysql_engine: AsyncEngine, dropped: str, clock: FrozenClock
) -> None:
    store = SQLAlchemyStore(engine=mysql_engine, table_name=dropped, clock=clock)
    record = new_record(clock, user_id="ada")
    await store.create(record)
    await store.close()
    async with mysql_engine.connect() as conn:  # still open: the app's pool is untouched
        assert (await conn.execute(text(f"SELECT count(*) FROM `{dropped}`"))).scalar() == 1
    assert await store.read(record.key) == record
    await store.close()


async def test_the_apps_engine_serves_other_event_loops_through_a_fresh_pool(
    mysql_engine: AsyncEngine, dropped: str, clock: FrozenClock
) -> None:
    store = SQLAlchemyStore(engine=mysql_engine, table_name=dropped, clock=clock)
    record = new_record(clock)
    await store.create(record)

    def in_a_new_loop() -> object:
        async def read_then_close() -> object:
            found = await store.read(record.key)
            await store.close()
            return found

        return asyncio.run(read_then_close())

    assert await anyio.to_thread.run_sync(in_a_new_loop) == record
    assert await store.read(record.key) == record  # the app's own pool still works here
    await store.close()


async def test_the_table_is_exposed_for_alembic_with_its_name_and_indexes(
    mysql_engine: AsyncEngine, dropped: str
) -> None:
    store = SQLAlchemyStore(engine=mysql_engine, table_name=dropped)
    assert store.table.name == dropped
    assert store.table.metadata is store.metadata
    assert [column.name for column in store.table.columns] == [
        "key",
        "data",
        "user_id",
        "created_at",
        "expires_at",
        "version",
        "user_agent",
        "ip",
        "last_seen_at",
    ]
    await store.count()  # creates the table
    async with mysql_engine.connect() as conn:
        indexes = await conn.run_sync(lambda sync: inspect(sync).get_indexes(dropped))
    assert sorted(tuple(index["column_names"]) for index in indexes) == [
        ("expires_at",),
        ("user_id", "created_at"),
    ]
    await store.close()


async def test_without_delete_returning_destroy_still_tells_a_live_record_from_an_expired_one(
    mysql_url: str, dropped: str, clock: FrozenClock
) -> None:
    """MySQL (unlike MariaDB) has no ``DELETE ... RETURNING``: destroy then deletes the
    live row, and failing that any expired one."""
    engine = create_async_engine(mysql_url)
    async with engine.connect():
        pass  # the dialect learns the server's features on the first connection
    engine.dialect.delete_returning = False
    store = SQLAlchemyStore(engine=engine, table_name=dropped, clock=clock)
    live = new_record(clock, lifetime=3600)
    expired = new_record(clock, lifetime=60)
    await store.create(live)
    await store.create(expired)
    clock.advance(60)
    try:
        assert await store.destroy(live.key) is True
        assert await store.destroy(expired.key) is False
        assert await store.destroy(live.key) is False
        assert await store.clear() == 0  # the expired row went too
    finally:
        await store.close()
        await engine.dispose()


async def test_users_whose_ids_differ_only_in_case_or_trailing_space_stay_apart_on_mysql(
    mysql_url: str, dropped: str, clock: FrozenClock
) -> None:
    """MySQL's text collations fold case and pad spaces; the store compares bytes."""
    store = SQLAlchemyStore(mysql_url, table_name=dropped, clock=clock)
    try:
        records = [new_record(clock, user_id=user) for user in ("ada", "Ada", "ada ")]
        for record in records:
            await store.create(record)
        assert await store.user_sessions("ada") == [records[0]]
        assert await store.destroy_user_sessions("Ada") == 1
        assert await store.user_sessions("ada ") == [records[2]]
        assert await store.read(records[0].key.upper()) is None
    finally:
        await store.close()


@pytest.mark.parametrize(
    "scheme", ["mysql+asyncmy", "mariadb+asyncmy", "postgresql+asyncpg", "sqlite+aiosqlite"]
)
def test_create_store_builds_it_from_each_async_driver_url(scheme: str, tmp_path: Path) -> None:
    where = f"/{tmp_path}/s.db" if scheme.startswith("sqlite") else "app:pw@db/app"
    store = create_store(f"{scheme}://{where}?table_name=web_sessions&timeout=2")
    assert isinstance(store, SQLAlchemyStore)
    assert store.table.name == "web_sessions"
    assert store.timeout == 2


def test_a_url_without_an_async_driver_is_refused_with_the_spelling_to_use() -> None:
    with pytest.raises(ValueError, match=r"mysql\+asyncmy://"):
        SQLAlchemyStore.from_url("mysql://app:secret@db/app")


async def test_an_in_memory_sqlite_database_is_not_persistent() -> None:
    store = SQLAlchemyStore("sqlite+aiosqlite://")
    assert store.persistent is False


async def test_a_stale_version_never_overwrites_on_postgresql(
    postgres_dsn: str, namespace: str, clock: FrozenClock
) -> None:
    url = postgres_dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    store = SQLAlchemyStore(url, table_name=namespace, schema="public", clock=clock)
    try:
        record = new_record(clock)
        await store.create(record)
        changed = dataclasses.replace(record, data=b"changed")
        assert await store.update(changed, expected_version=1) is True
        assert await store.update(record, expected_version=1) is False
        assert await store.read(record.key) == dataclasses.replace(changed, version=2)
    finally:
        await store.close()
        engine = create_async_engine(url)
        async with engine.begin() as conn:
            await conn.run_sync(store.metadata.drop_all)
        await engine.dispose()


@pytest.fixture
async def own_user(mysql_url: str, namespace: str) -> AsyncIterator[str]:
    """A MariaDB user of this test's own, so its connections can be killed without
    touching anyone else's; the URL of ``mysql_url`` logged in as it."""
    admin = create_async_engine(mysql_url, poolclass=NullPool)
    async with admin.begin() as conn:
        await conn.execute(text(f"CREATE USER '{namespace}'@'%'"))
        await conn.execute(text(f"GRANT ALL ON test.* TO '{namespace}'@'%'"))
    url = make_url(mysql_url).set(username=namespace, password=None)
    yield url.render_as_string(hide_password=False)
    async with admin.begin() as conn:
        await conn.execute(text(f"DROP USER IF EXISTS '{namespace}'@'%'"))
    await admin.dispose()


async def kill_connections_of(mysql_url: str, user: str) -> int:
    """Kill every connection ``user`` has open; return how many there were."""
    admin = create_async_engine(mysql_url, poolclass=NullPool)
    try:
        async with admin.connect() as conn:
            found = await conn.execute(
                text("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = :user"),
                {"user": user},
            )
            ids = [int(row[0]) for row in found]
            for connection_id in ids:
                await conn.execute(text(f"KILL {connection_id}"))
        return len(ids)
    finally:
        await admin.dispose()


async def test_pooled_connections_killed_while_idle_are_replaced_without_an_error(
    mysql_url: str, own_user: str, namespace: str, clock: FrozenClock
) -> None:
    """As after a server restart, or a proxy closing idle sockets: the call that finds its
    pooled connection dead runs once more, on a fresh one."""
    store = SQLAlchemyStore(own_user, table_name=namespace, clock=clock)
    record = new_record(clock)
    try:
        await store.create(record)
        assert await kill_connections_of(mysql_url, namespace) >= 1
        assert await store.read(record.key) == record
    finally:
        await store.clear()
        await store.close()
        admin = create_async_engine(mysql_url, poolclass=NullPool)
        async with admin.begin() as conn:
            await conn.execute(text(f"DROP TABLE IF EXISTS `{namespace}`"))
        await admin.dispose()

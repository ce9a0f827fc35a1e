"""A store on SQLAlchemy 2 async engines: one code path for MySQL/MariaDB, PostgreSQL and SQLite.

Every statement runs on its own autocommitted connection, so a call is one statement
(two where the dialect lacks ``DELETE ... RETURNING``) that either happened or did not.
Times are stored as integer microseconds since the epoch, as SQLiteStore does, so they
round-trip exactly on every dialect and compare as plain integers.

Readers decide expiry by the store's clock, sent as a parameter. Writes also refuse a
row expired by the database server's own clock (``server_micros()``, compiled per
dialect), so a worker whose clock runs slow cannot revive a session.
"""

from __future__ import annotations

import asyncio
import hashlib
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Self, TypeVar

from sqlalchemy import (
    Dialect,
    MetaData,
    and_,
    delete,
    exc,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from asgi_sessions.exceptions import SessionError
from asgi_sessions.locks import file_lock, polled
from asgi_sessions.stores._loop import LoopLocal
from asgi_sessions.stores._sql import by_pages, checked_identifier, to_record
from asgi_sessions.stores._sqlalchemy_table import MYSQL, server_micros, session_table
from asgi_sessions.stores._tasks import settle, uninterrupted
from asgi_sessions.stores._urls import redact_url
from asgi_sessions.stores.base import (
    Clock,
    SessionRecord,
    SessionStore,
    StoreUnavailable,
    checked_record,
    from_microseconds,
    key_taken,
    to_microseconds,
    utc_now,
)

__all__ = ["SQLAlchemyStore", "session_table"]

_PAGE_SIZE = 500
_SWEEP_CHUNK = 1000  # keys per sweep statement: well under every driver's parameter limit
T = TypeVar("T")


@dataclass(frozen=True)
class _Engines:
    """One event loop's engine, and its autocommitting view (same pool)."""

    engine: AsyncEngine
    autocommit: AsyncEngine
    owned: bool


class SQLAlchemyStore(SessionStore):
    """Keeps records in one table through a SQLAlchemy async engine.

    Pass a ``url`` such as ``mysql+asyncmy://user:pw@host/db`` (the store builds, owns and
    disposes its engine) or the app's own ``engine`` (the store never disposes it). The
    table is ``self.table`` in ``self.metadata``, for Alembic. ``timeout`` bounds each call,
    connecting included.
    """

    driver_url_parameters: ClassVar[frozenset[str]] = frozenset(
        {"charset", "ssl", "ssl_ca", "ssl_cert", "ssl_key", "unix_socket"}
    )
    """Query parameters ``create_store`` leaves in the URL for SQLAlchemy and its driver."""

    def __init__(
        self,
        url: str | None = None,
        *,
        engine: AsyncEngine | None = None,
        table_name: str = "sessions",
        schema: str | None = None,
        create_table: bool = True,
        clock: Clock = utc_now,
        timeout: float = 5.0,
        pool_size: int = 10,
    ) -> None:
        super().__init__(clock=clock)
        if (url is None) == (engine is None):
            raise TypeError("SQLAlchemyStore takes either a url or an engine, not both or neither")
        checked_identifier("table_name", table_name)
        if schema is not None:
            checked_identifier("schema", schema)
        if not timeout > 0:
            raise ValueError(f"timeout={timeout!r} must be more than zero seconds")
        self.url = url
        self.table_name, self.schema, self.create_table = table_name, schema, create_table
        self.timeout = self._timeout = timeout
        self.pool_size = pool_size
        self.metadata = MetaData()
        self.table = session_table(self.metadata, table_name, schema)
        driver = make_url(url) if url is not None else engine.url  # type: ignore[union-attr]
        if url is not None:
            _import_driver(driver)
        sqlite = driver.get_backend_name() == "sqlite"
        self.persistent = not (sqlite and _in_memory(driver.database))
        self._given = engine
        self._home: weakref.ref[asyncio.AbstractEventLoop] | None = None
        self._table_ready = False
        self._engines = LoopLocal(self._open, self._close, _discard)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Accept SQLAlchemy async URLs: ``mysql+asyncmy://``, ``mariadb+asyncmy://``,
        ``mysql+aiomysql://``, ``postgresql+asyncpg://``, ``sqlite+aiosqlite://``."""
        if "+" not in url.partition("://")[0]:
            raise ValueError(
                f"SQLAlchemyStore needs a URL naming an async driver, such as "
                f"mysql+asyncmy://, got {redact_url(url)!r}"
            )
        return cls(url, **options)

    # -- one record --------------------------------------------------------------------

    async def read(self, key: str) -> SessionRecord | None:
        t = self.table
        query = select(t).where(t.c.key == key, t.c.expires_at > self._now())
        rows = await self._fetch(query)
        return _record(rows[0]) if rows else None

    async def create(self, record: SessionRecord) -> None:
        """Insert; when the key is taken, take it over only if its row has expired.

        Portable and race-safe: of two creates of one key, the loser's INSERT fails on
        the primary key and its UPDATE then finds the winner's row live.
        """
        checked_record(record)
        t = self.table
        row = {
            "key": record.key,
            "created_at": to_microseconds(record.created_at),
            "version": record.version,
            **_changing(record),
        }

        async def insert_or_take_over(conn: AsyncConnection) -> None:
            try:
                await conn.execute(insert(t).values(row))
                return
            except exc.IntegrityError:
                pass
            takeover = update(t).where(t.c.key == record.key, t.c.expires_at <= self._now())
            if (await conn.execute(takeover.values(row))).rowcount == 0:
                raise key_taken(record.key)

        await self._run(insert_or_take_over)

    async def update(self, record: SessionRecord, *, expected_version: int) -> bool:
        checked_record(record, expected_version=expected_version)
        t = self.table
        statement = (
            update(t)
            .where(t.c.key == record.key, t.c.version == expected_version, self._live_for_writes())
            .values(**_changing(record), version=t.c.version + 1)
        )
        return await self._change(statement) == 1

    async def destroy(self, key: str, *, expected_version: int | None = None) -> bool:
        """One ``DELETE ... RETURNING`` where the dialect has it; else delete the live row,
        then (without a version) any expired row under the key."""
        t = self.table
        now = self._now()
        live = t.c.expires_at > now
        if expected_version is not None:
            return (
                await self._change(
                    delete(t).where(t.c.key == key, t.c.version == expected_version, live)
                )
                == 1
            )

        async def delete_telling_if_live(conn: AsyncConnection) -> bool:
            if conn.dialect.delete_returning:
                result = await conn.execute(delete(t).where(t.c.key == key).returning(live))
                return bool(result.scalar())
            if (await conn.execute(delete(t).where(t.c.key == key, live))).rowcount == 1:
                return True
            await conn.execute(delete(t).where(t.c.key == key, t.c.expires_at <= now))
            return False

        return await self._run(delete_telling_if_live)

    async def extend_lifetime(
        self,
        key: str,
        expires_at: datetime,
        *,
        expected_version: int | None = None,
        seen_at: datetime | None = None,
    ) -> bool:
        t = self.table
        statement = update(t).where(t.c.key == key, self._live_for_writes())
        if expected_version is not None:
            statement = statement.where(t.c.version == expected_version)
        values: dict[str, Any] = {"expires_at": to_microseconds(expires_at)}
        if seen_at is not None:
            values["last_seen_at"] = to_microseconds(seen_at)
        return await self._change(statement.values(values)) == 1

    # -- many records ------------------------------------------------------------------

    async def delete_expired(self, before: datetime, batch_size: int) -> AsyncIterator[int]:
        """Select a batch of expired keys through the ``expires_at`` index, then delete
        those still expired, each its own short statement.

        The same two statements on every dialect: MySQL refuses ``DELETE ... WHERE key IN
        (SELECT ... LIMIT n)`` on one table. The delete checks expiry again, so a key a
        create took over between the two statements is spared.
        """
        t = self.table
        cutoff = to_microseconds(before)
        chunk = min(batch_size, _SWEEP_CHUNK)
        while True:
            expired = select(t.c.key).where(t.c.expires_at <= cutoff).order_by(t.c.expires_at)
            keys = [row[0] for row in await self._fetch(expired.limit(chunk))]
            if not keys:
                yield 0
                return
            yield await self._change(delete(t).where(t.c.key.in_(keys), t.c.expires_at <= cutoff))
            if len(keys) < chunk:
                return

    async def clear(self) -> int:
        return await self._change(delete(self.table))

    async def count(self) -> int:
        t = self.table
        rows = await self._fetch(select(func.count()).where(t.c.expires_at > self._now()))
        return int(rows[0][0])

    async def ids(self) -> list[str]:
        t = self.table
        rows = await self._fetch(select(t.c.key).where(t.c.expires_at > self._now()))
        return [row[0] for row in rows]

    async def all(self) -> AsyncIterator[SessionRecord]:
        """Yield live records in key order, one page per query (keyset pagination)."""
        t = self.table

        async def page_after(key: str) -> Sequence[Any]:
            query = select(t).where(t.c.key > key, t.c.expires_at > self._now())
            return await self._fetch(query.order_by(t.c.key).limit(_PAGE_SIZE))

        async for row in by_pages(page_after, _PAGE_SIZE):
            yield _record(row)

    async def user_sessions(self, user_id: str) -> list[SessionRecord]:
        t = self.table
        query = select(t).where(t.c.user_id == user_id, t.c.expires_at > self._now())
        return [_record(row) for row in await self._fetch(query.order_by(t.c.created_at, t.c.key))]

    async def destroy_user_sessions(self, user_id: str, *, keep: str | None = None) -> int:
        t = self.table
        statement = delete(t).where(t.c.user_id == user_id)
        if keep is not None:
            statement = statement.where(t.c.key != keep)
        return await self._change(statement)

    @asynccontextmanager
    async def user_lock(self, user_id: str) -> AsyncIterator[None]:
        """The database's own named lock, held on a connection only once taken (so
        waiters hold none): ``pg_try_advisory_lock`` on PostgreSQL, ``GET_LOCK`` on MySQL
        and MariaDB; a ``flock`` beside an SQLite file; a lock of this process for an
        in-memory SQLite. Tried every few milliseconds for up to ``timeout``."""
        digest = hashlib.sha256(f"{self.table.fullname}\x00{user_id}".encode()).digest()
        dialect = self._url().get_dialect().name
        if dialect == "sqlite":
            database = self._url().database
            if _in_memory(database):
                async with SessionStore.user_lock(self, user_id):
                    yield
            else:
                async with file_lock(f"{database}.lock", self._timeout):
                    yield
            return
        if dialect == "postgresql":
            key: object = int.from_bytes(digest[:8], "big", signed=True)
            take, free = "SELECT pg_try_advisory_lock(:k)", "SELECT pg_advisory_unlock(:k)"
        else:  # MySQL, MariaDB: lock names hold 64 characters
            key = f"asgi_sessions:{digest.hex()[:48]}"
            take, free = "SELECT GET_LOCK(:k, 0)", "SELECT RELEASE_LOCK(:k)"
        held: list[AsyncConnection] = []

        async def attempt() -> bool:
            engines = await self._engines.get()
            conn = await engines.autocommit.connect()
            try:
                taken = bool((await conn.execute(text(take), {"k": key})).scalar())
            except BaseException:
                await settle(conn.close())
                raise
            if taken:
                held.append(conn)
                return True
            await conn.close()
            return False

        try:
            await polled(attempt, self._timeout, f"the session lock of a user in {self.table}")
        except (exc.SQLAlchemyError, OSError) as error:
            raise self._unavailable(error) from error
        conn = held[0]
        try:
            yield
        finally:

            async def release() -> None:
                try:
                    await conn.execute(text(free), {"k": key})
                finally:
                    await conn.close()

            await settle(release())

    async def close(self) -> None:
        """Dispose of this loop's engine if the store made it (never the app's own)."""
        await self._engines.close()

    # -- connections -------------------------------------------------------------------

    def _now(self) -> int:
        return to_microseconds(self.clock())

    def _live_for_writes(self) -> Any:
        """Live by the store's clock and by the server's, so no write revives a record."""
        t = self.table
        return and_(t.c.expires_at > self._now(), t.c.expires_at > server_micros())

    async def _fetch(self, query: Any) -> Sequence[Any]:
        async def fetch(conn: AsyncConnection) -> Sequence[Any]:
            return (await conn.execute(query)).all()

        return await self._run(fetch)

    async def _change(self, statement: Any) -> int:
        async def change(conn: AsyncConnection) -> int:
            rowcount: int = (await conn.execute(statement)).rowcount
            return rowcount

        return await self._run(change)

    async def _run(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run ``work`` on a connection in a task of its own, which a cancellation of
        this call never interrupts: the call waits for it (``timeout`` at most), then
        ends cancelled.

        A statement cut off mid-way leaves a connection some drivers cannot reuse, and a
        cancel scope (anyio's, Starlette's) cancels again at every await, interrupting
        SQLAlchemy's own cleanup too; either would leave the pool short of a connection.

        A pooled connection found dead (the server restarted, a proxy closed it while
        idle) is run on once more: SQLAlchemy has then dropped the pool's connections,
        so the retry gets a fresh one. Running a statement again is safe, for every
        statement here is idempotent or guarded (create takes only an expired key,
        update compares versions).
        """
        try:
            return await uninterrupted(self._run_here(work))
        except StoreUnavailable as error:
            if not _connection_was_dead(error.__cause__):
                raise
        return await uninterrupted(self._run_here(work))

    async def _run_here(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run ``work`` on an autocommitting connection, all within ``timeout``; driver
        errors become StoreUnavailable, a value the database refuses a ValueError.

        A connection whose statement was cancelled is invalidated, not pooled again: a
        driver may still have the cancelled reply on the wire.
        """
        try:
            async with asyncio.timeout(self.timeout):
                engines = await self._engines.get()
                async with engines.autocommit.connect() as conn:
                    try:
                        return await work(conn)
                    except BaseException as error:
                        if not isinstance(error, Exception):
                            await settle(conn.invalidate())
                        raise
        except (exc.DataError, exc.StatementError) as error:
            refused = _refused_value(error)
            if refused is not None:
                raise ValueError(f"the session database refused a value: {refused}") from error
            raise self._unavailable(error) from error
        except (exc.SQLAlchemyError, OSError, TimeoutError) as error:
            raise self._unavailable(error) from error
        except SessionError:
            raise
        except Exception as error:  # a driver's own error that SQLAlchemy let through
            refused = _refused_value(error)
            if refused is not None:
                raise ValueError(f"the session database refused a value: {refused}") from error
            raise self._unavailable(error) from error

    def _unavailable(self, error: BaseException) -> StoreUnavailable:
        where = redact_url(str(self._url().render_as_string(hide_password=True)))
        if isinstance(error, TimeoutError):
            return StoreUnavailable(
                f"session database {where} did not answer within timeout={self.timeout}s;"
                " check the server's load and reachability, or raise timeout"
            )
        cause = getattr(error, "orig", None) or error
        return StoreUnavailable(
            f"session database {where} failed ({type(cause).__name__}: {cause}); check that"
            f" the server is up, the URL is right and table {self.table.fullname!r} exists"
            " (or pass create_table=True), then retry"
        )

    def _url(self) -> Any:
        return make_url(self.url) if self.url is not None else self._given.url  # type: ignore[union-attr]

    async def _open(self) -> _Engines:
        """This loop's engine: the store's own, the app's, or a copy of the app's.

        The app's engine is used in the first loop the store runs in, and in every loop
        when its pool keeps no connections (``NullPool``). In any other loop the store
        uses a copy with a fresh pool of the same configuration, disposed with that loop:
        a pooled connection belongs to the loop that opened it.
        """
        engine, owned = self._engine_for_this_loop()
        if engine is self._given or engine.sync_engine.dialect is self._given_dialect():
            autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        else:
            autocommit = engine  # made in autocommit mode: nothing to switch per checkout
        engines = _Engines(engine, autocommit, owned)
        try:
            if self.create_table and not self._table_ready:
                await self._create_table(engine)
        except BaseException:
            if owned:
                await settle(engine.dispose())
            raise
        return engines

    def _given_dialect(self) -> Dialect | None:
        """The dialect of the app's engine, shared by the copies made of it."""
        return None if self._given is None else self._given.sync_engine.dialect

    def _engine_for_this_loop(self) -> tuple[AsyncEngine, bool]:
        if self._given is None:
            assert self.url is not None
            return create_async_engine(self.url, **self._engine_options()), True
        loop = asyncio.get_running_loop()
        if self._home is None or self._home() is None:
            self._home = weakref.ref(loop)
        if self._home() is loop or isinstance(self._given.sync_engine.pool, NullPool):
            return self._given, False
        sync = self._given.sync_engine
        copy = Engine(sync.pool.recreate(), sync.dialect, sync.url, hide_parameters=True)
        return AsyncEngine(copy), True

    def _engine_options(self) -> dict[str, Any]:
        """Pool and driver settings for an engine the store makes, bounded by ``timeout``."""
        url = make_url(self.url or "")
        backend = url.get_backend_name()
        # Autocommit for good, no reset on return and no rollback at close: a call costs
        # its statement's round trip only, not a mode switch and a rollback around it.
        options: dict[str, Any] = {
            "hide_parameters": True,
            "isolation_level": "AUTOCOMMIT",
            "pool_reset_on_return": None,
            "skip_autocommit_rollback": True,
        }
        if backend == "sqlite":
            options["connect_args"] = {"timeout": self.timeout}
            return options
        options.update(pool_size=self.pool_size, pool_timeout=self.timeout, pool_recycle=3600)
        if backend == "postgresql":
            options["connect_args"] = {"timeout": self.timeout, "command_timeout": self.timeout}
        elif backend in MYSQL:
            options["connect_args"] = {"connect_timeout": max(1, round(self._timeout))}
        return options

    async def _create_table(self, engine: AsyncEngine) -> None:
        """Create the table and its indexes unless they exist; once more if another
        process created them at the same moment."""
        for attempt in (1, 2):
            try:
                async with engine.begin() as conn:
                    if self.schema is not None and engine.dialect.name == "postgresql":
                        await conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                    await conn.run_sync(self.metadata.create_all, checkfirst=True)
                    await self._add_device_columns(conn)
                break
            except (exc.IntegrityError, exc.ProgrammingError, exc.OperationalError):
                if attempt == 2:
                    raise
        self._table_ready = True

    async def _add_device_columns(self, conn: AsyncConnection) -> None:
        """Give a table made before devices were tracked their columns (NULL until a
        write fills them), typed as ``session_table`` types them on this dialect."""
        t = self.table

        def present(sync: Any) -> set[str]:
            return {c["name"] for c in inspect(sync).get_columns(t.name, schema=t.schema)}

        names = await conn.run_sync(present)
        preparer = conn.dialect.identifier_preparer
        for column in t.columns:
            if column.name in names:
                continue
            kind = column.type.compile(dialect=conn.dialect)
            add = f"ALTER TABLE {preparer.format_table(t)} ADD {preparer.quote(column.name)} {kind}"
            try:
                async with conn.begin_nested():
                    await conn.exec_driver_sql(add)
            except exc.DBAPIError:
                if column.name not in await conn.run_sync(present):
                    raise  # not another process adding it at the same moment

    async def _close(self, engines: _Engines) -> None:
        if engines.owned:
            await engines.engine.dispose()


def _import_driver(url: URL) -> None:
    """Import the URL's dialect and driver now, so a missing one fails at construction
    with the line that installs it, not at the first request."""
    try:
        url.get_dialect().import_dbapi()
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            f"SQLAlchemyStore for {url.drivername}:// needs the {error.name!r} package: pip"
            f" install 'asgi-server-sessions[sqlalchemy]' (asyncmy), or {error.name} itself",
            name=error.name,
        ) from error


def _connection_was_dead(error: BaseException | None) -> bool:
    """Whether ``error`` says a connection was found dead, which SQLAlchemy then drops
    from the pool with the pool's other connections."""
    return isinstance(error, exc.DBAPIError) and error.connection_invalidated


def _changing(record: SessionRecord) -> dict[str, Any]:
    """The columns an update writes, as stored: times in integer microseconds."""
    seen = record.last_seen_at
    return {
        "data": record.data,
        "user_id": record.user_id,
        "expires_at": to_microseconds(record.expires_at),
        "user_agent": record.user_agent,
        "ip": record.ip,
        "last_seen_at": None if seen is None else to_microseconds(seen),
    }


def _record(row: Sequence[Any]) -> SessionRecord:
    return to_record(row, from_microseconds)


def _in_memory(database: str | None) -> bool:
    return database in (None, "", ":memory:") or "mode=memory" in (database or "")


def _discard(engines: _Engines) -> None:
    """Drop the pool of a loop that closed without disposing of it; its connections are
    not closed (their loop is gone) but left to be collected."""
    if engines.owned:
        engines.engine.sync_engine.dispose(close=False)


_REFUSALS = frozenset(
    {
        "DataError",
        "CharacterNotInRepertoireError",
        "UntranslatableCharacterError",
        "StringDataRightTruncationError",
        "ProgramLimitExceededError",
    }
)
"""Drivers' names for "this value cannot be stored", whatever module they come from."""


def _refused_value(error: BaseException) -> BaseException | None:
    """The error behind ``error`` that says a value was refused (not that the server is
    down): a driver's data error, an over-long indexed value, text it cannot encode."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, UnicodeError | ValueError) or type(current).__name__ in _REFUSALS:
            return current
        pending += [getattr(current, "orig", None), current.__cause__, current.__context__]
    return None

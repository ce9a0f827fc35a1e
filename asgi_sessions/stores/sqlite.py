"""A store in one SQLite file (aiosqlite): the embedded default, persistent across restarts.

Each event loop gets its own connection in autocommit mode, so every call is one
statement that either happened or did not; a cancelled call leaves nothing half done.
Times are stored as integer microseconds since the epoch, so they round-trip exactly.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, contextmanager
from datetime import datetime
from typing import Any, Self, TypeVar
from urllib.parse import quote, unquote, urlsplit

import aiosqlite

from asgi_sessions.locks import file_lock
from asgi_sessions.stores._loop import LoopLocal
from asgi_sessions.stores._sql import (
    COLUMNS,
    DEVICE_COLUMNS,
    Statements,
    by_pages,
    checked_identifier,
    to_record,
)
from asgi_sessions.stores._thread_batches import ThreadBatches
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

_T = TypeVar("_T")
_PAGE_SIZE = 1000
_HINTS = (  # sqlite3 message fragment -> what the user can do about it
    ("locked", "is locked by another writer (waited timeout={timeout}s): retry or raise timeout"),
    ("unable to open", "cannot be opened: check that its directory exists and is writable"),
    ("no such table", "has no table {table!r}: pass create_table=True or create it yourself"),
    (
        "no such column",
        "has a table {table!r} made before devices were tracked ({exc}): open it once with"
        " create_table=True, which adds the columns, or add user_agent TEXT, ip TEXT and"
        " last_seen_at INTEGER yourself",
    ),
)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS {t} (
    key TEXT PRIMARY KEY,
    data BLOB NOT NULL,
    user_id TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    version INTEGER NOT NULL,
    user_agent TEXT,
    ip TEXT,
    last_seen_at INTEGER
);
CREATE INDEX IF NOT EXISTS {t_bare}_expires_at ON {t} (expires_at);
CREATE INDEX IF NOT EXISTS {t_bare}_user_id ON {t} (user_id, created_at);
"""


_UPSERT = (
    "INSERT INTO {t} ({columns}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
    " ON CONFLICT (key) DO UPDATE SET data = excluded.data, user_id = excluded.user_id,"
    " created_at = excluded.created_at, expires_at = excluded.expires_at,"
    " version = excluded.version, user_agent = excluded.user_agent, ip = excluded.ip,"
    " last_seen_at = excluded.last_seen_at"
)
"""Insert a row, or take its key over; each use adds the WHERE that says when."""


def _record(row: Sequence[Any]) -> SessionRecord:
    return to_record(row, from_microseconds)


def _row(record: SessionRecord) -> tuple[Any, ...]:
    """The values of ``COLUMNS`` for ``record``, times as integer microseconds."""
    seen = record.last_seen_at
    return (
        record.key,
        record.data,
        record.user_id,
        to_microseconds(record.created_at),
        to_microseconds(record.expires_at),
        record.version,
        record.user_agent,
        record.ip,
        None if seen is None else to_microseconds(seen),
    )


def _stop(connection: aiosqlite.Connection) -> None:
    """Close a connection without awaiting it, for when its event loop may be gone.

    Done from a thread with no event loop: ``Connection.stop()`` then queues the close with
    no reply owed to a loop that may close first (which would make the worker raise), and
    the connection is held until its worker has closed it, so aiosqlite never finds it open.
    """

    def stop_and_wait() -> None:
        connection.stop()
        connection._thread.join()

    threading.Thread(target=stop_and_wait, name="aiosqlite-stop", daemon=True).start()


class SQLiteStore(SessionStore):
    """Keeps records in a table of one SQLite file; ``":memory:"`` lasts one connection only.

    The file is created on first use unless ``create_file=False``: then a missing file
    is a StoreUnavailable saying "no such database file", as tools that only read want.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = "sessions.db",
        *,
        table_name: str = "sessions",
        create_table: bool = True,
        clock: Clock = utc_now,
        timeout: float = 5.0,
        create_file: bool = True,
    ) -> None:
        super().__init__(clock=clock)
        checked_identifier("table_name", table_name)
        if timeout < 0:
            raise ValueError(f"timeout={timeout!r} must be zero or more seconds")
        path = os.fspath(path)
        self.path = path if path == ":memory:" else os.path.abspath(path)
        self.persistent = self.path != ":memory:"
        self.table_name = table_name
        self._statements = Statements(t=f'"{table_name}"', t_bare=table_name, columns=COLUMNS)
        self.create_table = create_table
        self.timeout = timeout
        self.create_file = create_file
        self._shared = LoopLocal(
            self._open_shared,
            lambda batches: self._close(batches.connection),
            lambda batches: _stop(batches.connection),
        )

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """``sqlite:///relative.db``, ``sqlite:////absolute.db``, or ``sqlite://`` for memory."""
        parts = urlsplit(url)
        memory = parts.netloc in ("", ":memory:") and parts.path in ("", "/:memory:")
        path = parts.path[1:] if parts.path.startswith("/") and not parts.netloc else ""
        if (
            parts.scheme.lower() != "sqlite"
            or parts.query
            or parts.fragment
            or not (memory or path)
        ):
            raise ValueError(
                f"cannot read SQLite URL {redact_url(url)!r}: write sqlite:///relative/path.db"
                " (three slashes), sqlite:////absolute/path.db (four) or sqlite:// (in memory), and"
                " pass options such as table_name as keyword arguments"
            )
        return cls(":memory:" if memory else unquote(path), **options)

    def _now(self, *, writing: bool = False) -> int:
        """Now by the store clock in microseconds; for a write, the later of it and this
        host's clock, so a store whose clock runs slow never revives an expired record."""
        now = max(self.clock(), utc_now()) if writing else self.clock()
        return to_microseconds(now)

    def _sql(self, template: str) -> str:
        """Put the table name, checked as an identifier in __init__, into a statement."""
        return self._statements[template]

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Turn any sqlite3 or OS error into StoreUnavailable, saying what to do about it."""
        try:
            yield
        except (sqlite3.Error, OSError) as exc:
            if not self.create_file and not os.path.exists(self.path):
                raise StoreUnavailable(f"no such database file: {self.path}") from exc
            hint = next(
                (h for text, h in _HINTS if text in str(exc)),
                "failed ({exc}): check the file and its disk",
            )
            where = f"SQLite session database {self.path!r} "
            raise StoreUnavailable(
                where + hint.format(exc=exc, timeout=self.timeout, table=self.table_name)
            ) from exc

    async def _open(self) -> aiosqlite.Connection:
        """Connect in autocommit mode with WAL and a busy timeout; create the table if asked.

        With ``create_file=False`` a missing file is not created (see ``_errors``).
        """
        database = self.path
        uri = self.persistent and not self.create_file
        if uri:  # read and write, never create: sqlite's URI mode=rw
            database = f"file:{quote(self.path)}?mode=rw"
        connection = aiosqlite.connect(
            database, uri=uri, timeout=self.timeout, isolation_level=None
        )
        # aiosqlite 0.22 runs a non-daemon worker that would keep the process alive at
        # exit if the store is never closed; every write is committed before it returns,
        # so nothing is lost by letting the interpreter end it.
        connection._thread.daemon = True
        try:
            with self._errors():
                await connection
                await self._prepare(connection)
        except BaseException as exc:
            _stop(connection)
            if isinstance(exc, Exception):  # a failed connect still owes this loop a reply
                await asyncio.to_thread(connection._thread.join)
            raise
        return connection

    async def _prepare(self, connection: aiosqlite.Connection) -> None:
        """Turn on WAL and create the table, retrying while another connection does the same.

        Switching a new file to WAL fails at once, without waiting out the busy timeout,
        while another connection is switching it too; every statement here is idempotent.
        """
        script = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
        if self.create_table:
            script += self._sql(_SCHEMA)
        deadline = asyncio.get_running_loop().time() + (self.timeout or 0)
        while True:
            try:
                async with connection.executescript(script):
                    pass
                if self.create_table:
                    await self._add_device_columns(connection)
                return
            except sqlite3.OperationalError as exc:
                locked = "locked" in str(exc) or "duplicate column" in str(exc)
                if not locked or asyncio.get_running_loop().time() > deadline:
                    raise
            await asyncio.sleep(0.01)

    async def _add_device_columns(self, connection: aiosqlite.Connection) -> None:
        """Give a table made before devices were tracked their columns (each NULL until a
        write fills it). Another connection adding one at the same moment is retried."""
        info = await connection.execute_fetchall(self._sql("PRAGMA table_info({t})"))
        present = {row[1] for row in info}
        types = {"text": "TEXT", "time": "INTEGER"}
        for name, kind in DEVICE_COLUMNS:
            if name not in present:
                await connection.execute(self._sql(f"ALTER TABLE {{t}} ADD {name} {types[kind]}"))

    async def _close(self, connection: aiosqlite.Connection) -> None:
        with self._errors():
            await connection.close()

    async def _open_shared(self) -> ThreadBatches:
        """This loop's connection, which the store's calls share, sent calls in batches."""
        return ThreadBatches(await self._open())

    async def _fetch(self, sql: str, parameters: Sequence[Any]) -> list[Sequence[Any]]:
        """Run one query on this loop's connection and return every row."""
        return await self._on_thread(sql, parameters, sqlite3.Cursor.fetchall)

    async def _change(self, sql: str, parameters: Sequence[Any]) -> int:
        """Run one data-changing statement (committed on return); return the rows it touched.

        The row count is read on the connection's thread, so this is one trip there
        (aiosqlite's ``execute`` takes two: run, then close the cursor).
        """
        return await self._on_thread(sql, parameters, lambda cursor: cursor.rowcount)

    async def _on_thread(
        self, sql: str, parameters: Sequence[Any], result: Callable[[sqlite3.Cursor], _T]
    ) -> _T:
        """Run one statement on this loop's connection and take ``result`` of its cursor,
        both on the connection's thread."""
        batches = await self._shared.get()
        statement = self._sql(sql)
        with self._errors():
            return await batches.run(lambda raw: result(raw.execute(statement, parameters)))

    async def read(self, key: str) -> SessionRecord | None:
        rows = await self._fetch(
            "SELECT {columns} FROM {t} WHERE key = ? AND expires_at > ?",
            (key, self._now()),
        )
        return _record(rows[0]) if rows else None

    async def create(self, record: SessionRecord) -> None:
        checked_record(record)
        changed = await self._change(
            _UPSERT + " WHERE {t}.expires_at <= ?10", (*_row(record), self._now())
        )
        if changed == 0:
            raise key_taken(record.key)

    async def import_records(self, records: Sequence[SessionRecord]) -> Counter[str]:
        """One transaction per batch on a connection of its own: the keys already there,
        then every row in one ``executemany``, each taking its key only from an expired
        row or an older version."""
        for record in records:
            checked_record(record)
        if not records:
            return Counter()
        now = self._now()
        own = self.persistent
        connection = await self._open() if own else (await self._shared.get()).connection
        try:
            with self._errors():
                await connection.execute("BEGIN IMMEDIATE")
                found = await connection.execute_fetchall(
                    self._sql(
                        "SELECT key, version FROM {t} WHERE expires_at > ?"
                        " AND key IN (SELECT value FROM json_each(?))"
                    ),
                    (now, json.dumps([record.key for record in records])),
                )
                live: dict[str, int] = {row[0]: row[1] for row in found}
                await connection.executemany(
                    self._sql(_UPSERT + " WHERE {t}.expires_at <= ?10 OR {t}.version < ?6"),
                    [(*_row(record), now) for record in records],
                )
                await connection.execute("COMMIT")
        except BaseException:
            if own:
                _stop(connection)
            raise
        if own:
            await self._close(connection)
        return Counter(
            "copied" if r.key not in live else "replaced" if live[r.key] < r.version else "skipped"
            for r in records
        )

    async def update(self, record: SessionRecord, *, expected_version: int) -> bool:
        checked_record(record, expected_version=expected_version)
        key, data, user_id, _, expires, _, user_agent, ip, seen = _row(record)
        changed = await self._change(
            "UPDATE {t} SET data = ?, user_id = ?, expires_at = ?, version = version + 1,"
            " user_agent = ?, ip = ?, last_seen_at = ?"
            " WHERE key = ? AND version = ? AND expires_at > ?",
            (
                *(data, user_id, expires, user_agent, ip, seen),
                *(key, expected_version, self._now(writing=True)),
            ),
        )
        return changed == 1

    async def destroy(self, key: str, *, expected_version: int | None = None) -> bool:
        rows = await self._fetch(
            "DELETE FROM {t} WHERE key = ?1 AND (?2 IS NULL OR (version = ?2 AND expires_at > ?3))"
            " RETURNING expires_at > ?3",
            (key, expected_version, self._now()),
        )
        return bool(rows and rows[0][0])

    async def extend_lifetime(
        self,
        key: str,
        expires_at: datetime,
        *,
        expected_version: int | None = None,
        seen_at: datetime | None = None,
    ) -> bool:
        seen = None if seen_at is None else to_microseconds(seen_at)
        changed = await self._change(
            "UPDATE {t} SET expires_at = ?1, last_seen_at = coalesce(?5, last_seen_at)"
            " WHERE key = ?2 AND expires_at > ?3 AND version = coalesce(?4, version)",
            (to_microseconds(expires_at), key, self._now(writing=True), expected_version, seen),
        )
        return changed == 1

    async def delete_expired(self, before: datetime, batch_size: int) -> AsyncIterator[int]:
        """Delete expired rows a batch at a time, on a connection of the sweep's own.

        Reads on the store's connection then never queue behind a batch (WAL lets them
        run while it writes) and writers wait for one batch at most. An in-memory
        database has one connection only, so it is swept on that one.
        """
        own = self.persistent
        connection = await self._open() if own else (await self._shared.get()).connection
        sql = self._sql(
            "DELETE FROM {t} WHERE rowid IN (SELECT rowid FROM {t} WHERE expires_at <= ? LIMIT ?)"
        )
        try:
            while True:
                with self._errors():
                    async with connection.execute(
                        sql, (to_microseconds(before), batch_size)
                    ) as cursor:
                        removed = cursor.rowcount
                yield removed
                if removed < batch_size:
                    break
        except BaseException:
            if own:
                _stop(connection)  # cancelled, failed or abandoned: close without awaiting
            raise
        if own:
            await self._close(connection)

    async def clear(self) -> int:
        return await self._change("DELETE FROM {t}", ())

    async def count(self) -> int:
        rows = await self._fetch("SELECT count(*) FROM {t} WHERE expires_at > ?", (self._now(),))
        return int(rows[0][0])

    async def ids(self) -> list[str]:
        rows = await self._fetch("SELECT key FROM {t} WHERE expires_at > ?", (self._now(),))
        return [row[0] for row in rows]

    async def all(self) -> AsyncIterator[SessionRecord]:
        """Yield live records in key order, a page at a time (keyset pagination)."""

        def page_after(key: str) -> Awaitable[list[Sequence[Any]]]:
            return self._fetch(
                "SELECT {columns} FROM {t} WHERE key > ? AND expires_at > ? ORDER BY key LIMIT ?",
                (key, self._now(), _PAGE_SIZE),
            )

        async for row in by_pages(page_after, _PAGE_SIZE):
            yield _record(row)

    async def user_sessions(self, user_id: str) -> list[SessionRecord]:
        rows = await self._fetch(
            "SELECT {columns} FROM {t} WHERE user_id = ? AND expires_at > ?"
            " ORDER BY created_at, key",
            (user_id, self._now()),
        )
        return [_record(row) for row in rows]

    async def destroy_user_sessions(self, user_id: str, *, keep: str | None = None) -> int:
        return await self._change(
            "DELETE FROM {t} WHERE user_id = ? AND key IS NOT ?", (user_id, keep)
        )

    def user_lock(self, user_id: str) -> AbstractAsyncContextManager[None]:
        """An exclusive ``flock`` on ``<database>.lock`` beside the file, for every user at
        once (SQLite has one writer at a time anyway): it holds across the processes of
        this host, as the file does. An in-memory database lives in one process, so a
        lock of this process holds it."""
        if not self.persistent:
            return super().user_lock(user_id)
        return file_lock(f"{self.path}.lock", self.timeout or 0.0)

    async def close(self) -> None:
        """Close this loop's connection; a later call opens a new one."""
        await self._shared.close()

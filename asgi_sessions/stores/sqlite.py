"""A store in one SQLite file (aiosqlite): the embedded default, persistent across restarts.

Each event loop gets its own connection in autocommit mode, so every call is one
statement that either happened or did not; a cancelled call leaves nothing half done.
Times are stored as integer microseconds since the epoch, so they round-trip exactly.
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Self
from urllib.parse import quote, unquote, urlsplit

import aiosqlite

from asgi_sessions.stores._loop import LoopLocal
from asgi_sessions.stores._urls import redact_url
from asgi_sessions.stores.base import (
    Clock,
    ProgressCallback,
    SessionExists,
    SessionRecord,
    SessionStore,
    StoreUnavailable,
    utc_now,
)

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_PAGE_SIZE = 1000
_COLUMNS = "key, data, user_id, created_at, expires_at, version"
_HINTS = (  # sqlite3 message fragment -> what the user can do about it
    ("locked", "is locked by another writer (waited timeout={timeout}s): retry or raise timeout"),
    ("unable to open", "cannot be opened: check that its directory exists and is writable"),
    ("no such table", "has no table {table!r}: pass create_table=True or create it yourself"),
)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS {t} (
    key TEXT PRIMARY KEY,
    data BLOB NOT NULL,
    user_id TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    version INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS {t_bare}_expires_at ON {t} (expires_at);
CREATE INDEX IF NOT EXISTS {t_bare}_user_id ON {t} (user_id, created_at);
"""


def _micros(moment: datetime) -> int:
    """An aware datetime as whole microseconds since the epoch (exact, no float)."""
    return (moment - _EPOCH) // _MICROSECOND


def _datetime(micros: int) -> datetime:
    return _EPOCH + micros * _MICROSECOND


def _record(row: Sequence[Any]) -> SessionRecord:
    key, data, user_id, created_at, expires_at, version = row
    return SessionRecord(
        key, bytes(data), user_id, _datetime(created_at), _datetime(expires_at), version
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
        if not _IDENTIFIER.fullmatch(table_name):
            raise ValueError(
                f"table_name={table_name!r} is not a plain SQL identifier: use up to 63"
                " letters, digits and underscores, not starting with a digit"
            )
        if timeout < 0:
            raise ValueError(f"timeout={timeout!r} must be zero or more seconds")
        path = os.fspath(path)
        self.path = path if path == ":memory:" else os.path.abspath(path)
        self.persistent = self.path != ":memory:"
        self.table_name = table_name
        self.create_table = create_table
        self.timeout = timeout
        self.create_file = create_file
        self._connection = LoopLocal(self._open, self._close, _stop)

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

    def _now(self) -> int:
        return _micros(self.clock())

    def _sql(self, template: str) -> str:
        """Put the table name, checked as an identifier in __init__, into a statement."""
        return template.format(t=f'"{self.table_name}"', t_bare=self.table_name, columns=_COLUMNS)

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
        deadline = asyncio.get_running_loop().time() + self.timeout
        while True:
            try:
                async with connection.executescript(script):
                    return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or asyncio.get_running_loop().time() > deadline:
                    raise
            await asyncio.sleep(0.01)

    async def _close(self, connection: aiosqlite.Connection) -> None:
        with self._errors():
            await connection.close()

    async def _fetch(self, sql: str, parameters: Iterable[Any]) -> list[Sequence[Any]]:
        """Run one query on this loop's connection and return every row."""
        connection = await self._connection.get()
        with self._errors():
            return list(await connection.execute_fetchall(self._sql(sql), parameters))

    async def _change(self, sql: str, parameters: Iterable[Any]) -> int:
        """Run one data-changing statement (committed on return); return the rows it touched."""
        connection = await self._connection.get()
        with self._errors():
            async with connection.execute(self._sql(sql), parameters) as cursor:
                return cursor.rowcount

    async def read(self, key: str) -> SessionRecord | None:
        rows = await self._fetch(
            "SELECT {columns} FROM {t} WHERE key = ? AND expires_at > ?",
            (key, self._now()),
        )
        return _record(rows[0]) if rows else None

    async def create(self, record: SessionRecord) -> None:
        created, expires = _micros(record.created_at), _micros(record.expires_at)
        row = (record.key, record.data, record.user_id, created, expires, record.version)
        changed = await self._change(
            "INSERT INTO {t} ({columns}) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (key) DO UPDATE SET data = excluded.data,"
            " user_id = excluded.user_id, created_at = excluded.created_at,"
            " expires_at = excluded.expires_at, version = excluded.version"
            " WHERE {t}.expires_at <= ?",
            (*row, self._now()),
        )
        if changed == 0:
            raise SessionExists(f"a session with key {record.key[:12]}... already exists")

    async def update(self, record: SessionRecord, *, expected_version: int) -> bool:
        expires = _micros(record.expires_at)
        changed = await self._change(
            "UPDATE {t} SET data = ?, user_id = ?, expires_at = ?, version = version + 1"
            " WHERE key = ? AND version = ? AND expires_at > ?",
            (record.data, record.user_id, expires, record.key, expected_version, self._now()),
        )
        return changed == 1

    async def destroy(self, key: str) -> None:
        await self._change("DELETE FROM {t} WHERE key = ?", (key,))

    async def extend_lifetime(self, key: str, expires_at: datetime) -> None:
        await self._change(
            "UPDATE {t} SET expires_at = ? WHERE key = ? AND expires_at > ?",
            (_micros(expires_at), key, self._now()),
        )

    async def cleanup_expired_sessions(
        self, *, batch_size: int = 1000, progress: ProgressCallback | None = None
    ) -> int:
        """Delete expired rows a batch at a time, on a connection of the sweep's own.

        Reads on the store's connection then never queue behind a batch (WAL lets them
        run while it writes) and writers wait for one batch at most. An in-memory
        database has one connection only, so it is swept on that one. ``progress``
        hears the running total after each batch that removed rows (once, with 0, when
        there was nothing to remove).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r} must be at least 1")
        if not self.persistent:
            return await self._sweep(await self._connection.get(), batch_size, progress)
        connection = await self._open()
        try:
            removed = await self._sweep(connection, batch_size, progress)
        except BaseException:
            _stop(connection)  # cancelled or failed: close without awaiting
            raise
        await self._close(connection)
        return removed

    async def _sweep(
        self,
        connection: aiosqlite.Connection,
        batch_size: int,
        progress: ProgressCallback | None,
    ) -> int:
        sql = self._sql(
            "DELETE FROM {t} WHERE rowid IN (SELECT rowid FROM {t} WHERE expires_at <= ? LIMIT ?)"
        )
        now, total = self._now(), 0
        while True:
            with self._errors():
                async with connection.execute(sql, (now, batch_size)) as cursor:
                    removed = cursor.rowcount
            total += removed
            if progress is not None and (removed or not total):
                progress(total)
            if removed < batch_size:
                return total
            await asyncio.sleep(0)

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
        after = ""
        while True:
            rows = await self._fetch(
                "SELECT {columns} FROM {t} WHERE key > ? AND expires_at > ? ORDER BY key LIMIT ?",
                (after, self._now(), _PAGE_SIZE),
            )
            for row in rows:
                yield _record(row)
            if len(rows) < _PAGE_SIZE:
                return
            after = rows[-1][0]

    async def user_sessions(self, user_id: str) -> list[SessionRecord]:
        rows = await self._fetch(
            "SELECT {columns} FROM {t} WHERE user_id = ? AND expires_at > ?"
            " ORDER BY created_at, key",
            (user_id, self._now()),
        )
        return [_record(row) for row in rows]

    async def destroy_user_sessions(self, user_id: str, *, keep: str | None = None) -> int:
        return await self._change(
            "DELETE FROM {t} WHERE user_id = ? AND expires_at > ? AND key IS NOT ?",
            (user_id, self._now(), keep),
        )

    async def close(self) -> None:
        """Close this loop's connection; a later call opens a new one."""
        await self._connection.close()

"""A PostgreSQL store on asyncpg: one table, one round trip per request, batched cleanup.

Readers decide expiry by the store's injected clock, sent with each query as a parameter
(``expires_at > $now``), not by the server's ``now()``: the app and the database may
disagree about the time, and tests move a clock of their own. Writes also refuse a row
expired by the server's own clock (``statement_timestamp()``), so a worker whose clock
runs slow cannot revive a session.
"""

from __future__ import annotations

import asyncio
import hashlib
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from typing import Any, ClassVar, Self

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from asgi_sessions.locks import polled
from asgi_sessions.stores._asyncpg import PostgresConnections
from asgi_sessions.stores._sql import (
    COLUMNS,
    DEVICE_COLUMNS,
    Statements,
    by_pages,
    checked_identifier,
    to_record,
)
from asgi_sessions.stores._tasks import settle
from asgi_sessions.stores._turn_batches import TurnBatches
from asgi_sessions.stores._urls import redact_url
from asgi_sessions.stores.base import (
    Clock,
    SessionRecord,
    SessionStore,
    checked_record,
    key_taken,
    utc_now,
)

_PAGE_SIZE = 500
_INDEXED_BYTES = 2048  # a btree entry holds about 2.7 kB: keys and user ids stay below
_INFINITIES = (datetime.max.replace(tzinfo=UTC), datetime.min.replace(tzinfo=UTC))

_CREATE_TABLE = """
CREATE TABLE {table} (
    key TEXT PRIMARY KEY,
    data BYTEA NOT NULL,
    user_id TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    version BIGINT NOT NULL,
    user_agent TEXT,
    ip TEXT,
    last_seen_at TIMESTAMPTZ
);
CREATE INDEX ON {table} (expires_at);
CREATE INDEX ON {table} (user_id) WHERE user_id IS NOT NULL;
"""
_READ = "SELECT {columns} FROM {table} WHERE key = $1 AND expires_at > $2"
_READ_MANY = "SELECT {columns} FROM {table} WHERE key = ANY($1::text[]) AND expires_at > $2"
# A migration's batch: what is there, then every row in one statement, each taking its
# key only from an expired row or an older version.
_IMPORT_SEEN = "SELECT key, version, expires_at > $2 FROM {table} WHERE key = ANY($1::text[])"
_IMPORT = """
INSERT INTO {table} AS t ({columns})
SELECT * FROM unnest($1::text[], $2::bytea[], $3::text[], $4::timestamptz[],
    $5::timestamptz[], $6::bigint[], $7::text[], $8::text[], $9::timestamptz[])
ON CONFLICT (key) DO UPDATE SET data = EXCLUDED.data, user_id = EXCLUDED.user_id,
    created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at,
    version = EXCLUDED.version, user_agent = EXCLUDED.user_agent, ip = EXCLUDED.ip,
    last_seen_at = EXCLUDED.last_seen_at
WHERE t.expires_at <= $10 OR t.version < EXCLUDED.version
RETURNING key
"""
# Takes the key only from an expired row, so a live session is never overwritten.
_CREATE = """
INSERT INTO {table} AS t ({columns}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (key) DO UPDATE SET data = EXCLUDED.data, user_id = EXCLUDED.user_id,
    created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at,
    version = EXCLUDED.version, user_agent = EXCLUDED.user_agent, ip = EXCLUDED.ip,
    last_seen_at = EXCLUDED.last_seen_at
WHERE t.expires_at <= $10
"""
# Writes take "now" as the later of the store's clock and the server's, so a store whose
# clock runs slow never revives a row expired by the server's time.
_UPDATE = """
UPDATE {table} SET data = $2, user_id = $3, expires_at = $4, version = version + 1,
    user_agent = $7, ip = $8, last_seen_at = $9
WHERE key = $1 AND version = $5 AND expires_at > greatest($6, statement_timestamp())
"""
_EXTEND = """
UPDATE {table} SET expires_at = $2, last_seen_at = coalesce($5, last_seen_at)
WHERE key = $1 AND expires_at > greatest($3, statement_timestamp())
    AND version = coalesce($4::bigint, version)
"""
# Without a version, removes the row live or expired; says whether it was live.
_DESTROY = """
DELETE FROM {table}
WHERE key = $1 AND ($3::bigint IS NULL OR (version = $3 AND expires_at > $2))
RETURNING expires_at > $2
"""
_SWEEP = """
DELETE FROM {table} WHERE key IN (
    SELECT key FROM {table} WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED
)
"""
_CLEAR = "DELETE FROM {table}"
_COUNT = "SELECT count(*) FROM {table} WHERE expires_at > $1"
_IDS = "SELECT key FROM {table} WHERE expires_at > $1"
_PAGE = "SELECT {columns} FROM {table} WHERE key > $1 AND expires_at > $2 ORDER BY key LIMIT $3"
_USER_SESSIONS = """
SELECT {columns} FROM {table} WHERE user_id = $1 AND expires_at > $2 ORDER BY created_at, key
"""
_DESTROY_USER = "DELETE FROM {table} WHERE user_id = $1 AND key IS DISTINCT FROM $2"


class PostgresStore(SessionStore):
    """Keeps records in one PostgreSQL table, through a pool opened lazily per event loop.

    Pass a ``dsn`` (the store opens, owns and closes its pool) or an existing asyncpg
    ``pool`` (the caller owns it; the store never closes it). ``connect_timeout`` bounds
    opening a connection and waiting for a free one; ``command_timeout`` bounds each query.
    """

    driver_url_parameters: ClassVar[frozenset[str]] = frozenset(
        {
            # read by asyncpg itself
            "host", "port", "user", "password", "passfile", "dbname", "database", "service",
            "sslmode", "sslcert", "sslkey", "sslrootcert", "sslcrl", "sslpassword",
            "sslnegotiation", "ssl_min_protocol_version", "ssl_max_protocol_version",
            "target_session_attrs", "krbsrvname", "gsslib",
            # sent on by asyncpg as server settings
            "application_name", "search_path", "timezone", "statement_timeout",
            "lock_timeout", "idle_in_transaction_session_timeout",
        }
    )  # fmt: skip
    """Query parameters ``create_store`` leaves in the DSN for asyncpg. Any other server
    setting is refused there: pass it through your own pool (``PostgresStore(pool=...)``)."""

    def __init__(
        self,
        dsn: str | None = None,
        *,
        pool: asyncpg.Pool[Any] | None = None,
        table_name: str = "sessions",
        schema: str | None = None,
        create_table: bool = True,
        clock: Clock = utc_now,
        connect_timeout: float = 5.0,
        command_timeout: float = 5.0,
        min_size: int = 1,
        max_size: int = 10,
    ) -> None:
        super().__init__(clock=clock)
        if (dsn is None) == (pool is None):
            raise TypeError("PostgresStore takes either a dsn or a pool, not both or neither")
        checked_identifier("table_name", table_name)
        if schema is not None:
            checked_identifier("schema", schema)
        self.table_name, self.schema, self.create_table = table_name, schema, create_table
        self.connect_timeout, self.command_timeout = connect_timeout, command_timeout
        self.timeout = max(connect_timeout, command_timeout)
        self.dsn = dsn
        self._table = f'"{schema}"."{table_name}"' if schema else f'"{table_name}"'
        self._statements = Statements(table=self._table, columns=COLUMNS)
        self._ddl_lock = _lock_key("create", self._table)
        self._sweep_lock = _lock_key("cleanup", self._table)
        self._db = PostgresConnections(
            dsn,
            pool,
            table=self._table,
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
            min_size=min_size,
            max_size=max_size,
            prepare=self._create_table if create_table else None,
        )
        self._reads: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, TurnBatches[str, SessionRecord | None]
        ] = weakref.WeakKeyDictionary()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Accept ``postgresql://`` and ``postgres://`` DSNs; options go to the constructor."""
        if not url.lower().startswith(("postgresql://", "postgres://")):
            raise ValueError(
                f"PostgresStore needs a postgresql:// or postgres:// URL, got {redact_url(url)!r}"
            )
        return cls(url, **options)

    async def read(self, key: str) -> SessionRecord | None:
        """One query; the reads that concurrent requests make in one turn of the event
        loop share one (``key = ANY(...)``)."""
        _text(key)
        loop = asyncio.get_running_loop()
        reads = self._reads.get(loop)
        if reads is None:
            reads = self._reads[loop] = TurnBatches(self._read_one, self._read_many)
        return await reads.run(key)

    async def _read_one(self, key: str) -> SessionRecord | None:
        row = await self._db.fetchrow(self._sql(_READ), key, self.clock())
        return None if row is None else to_record(row)

    async def _read_many(self, keys: list[str]) -> list[SessionRecord | None]:
        rows = await self._db.fetch(self._sql(_READ_MANY), keys, self.clock())
        found = {row["key"]: to_record(row) for row in rows}
        return [found.get(key) for key in keys]

    async def create(self, record: SessionRecord) -> None:
        _storable(checked_record(record))
        values = _row(record)
        if _rowcount(await self._db.execute(self._sql(_CREATE), *values, self.clock())) == 0:
            raise key_taken(record.key)

    async def import_records(self, records: Sequence[SessionRecord]) -> Counter[str]:
        """Two statements per batch: the keys already there, then one upsert of all."""
        for record in records:
            _storable(checked_record(record))
            _device(record)
        if not records:
            return Counter()
        now = self.clock()
        columns = list(zip(*(_row(record) for record in records), strict=True))
        async with self._db.connection() as conn, conn.transaction():
            seen = await conn.fetch(
                self._sql(_IMPORT_SEEN), list(columns[0]), now, timeout=self.command_timeout
            )
            written = await conn.fetch(
                self._sql(_IMPORT), *map(list, columns), now, timeout=self.command_timeout
            )
        live = {row["key"] for row in seen if row[2]}
        stored = {row["key"] for row in written}
        return Counter(
            "skipped" if r.key not in stored else "replaced" if r.key in live else "copied"
            for r in records
        )

    async def update(self, record: SessionRecord, *, expected_version: int) -> bool:
        _storable(checked_record(record, expected_version=expected_version))
        r = record
        values = (
            r.key,
            r.data,
            r.user_id,
            r.expires_at,
            expected_version,
            self.clock(),
            *_device(r),
        )
        return _rowcount(await self._db.execute(self._sql(_UPDATE), *values)) == 1

    async def destroy(self, key: str, *, expected_version: int | None = None) -> bool:
        _text(key)
        live = await self._db.fetchval(self._sql(_DESTROY), key, self.clock(), expected_version)
        return live is True

    async def extend_lifetime(
        self,
        key: str,
        expires_at: datetime,
        *,
        expected_version: int | None = None,
        seen_at: datetime | None = None,
    ) -> bool:
        _text(key)
        values = (key, expires_at, self.clock(), expected_version, seen_at)
        return _rowcount(await self._db.execute(self._sql(_EXTEND), *values)) == 1

    async def delete_expired(self, before: datetime, batch_size: int) -> AsyncIterator[int]:
        """Delete expired rows in batches, each in its own short transaction.

        Each batch first takes a transaction-level advisory lock for this table. When
        another process holds it, that process is sweeping: this sweep stops there and
        leaves the rest to it.
        """
        while (removed := await self._sweep_batch(before, batch_size)) is not None:
            yield removed
            if removed < batch_size:
                return

    async def clear(self) -> int:
        return _rowcount(await self._db.execute(self._sql(_CLEAR)))

    async def count(self) -> int:
        return int(await self._db.fetchval(self._sql(_COUNT), self.clock()))

    async def ids(self) -> list[str]:
        return [row["key"] for row in await self._db.fetch(self._sql(_IDS), self.clock())]

    async def all(self) -> AsyncIterator[SessionRecord]:
        """Yield live records in key order, one page per query, so memory stays bounded."""

        def page_after(key: str) -> Awaitable[list[asyncpg.Record]]:
            return self._db.fetch(self._sql(_PAGE), key, self.clock(), _PAGE_SIZE)

        async for row in by_pages(page_after, _PAGE_SIZE):
            yield to_record(row)

    async def user_sessions(self, user_id: str) -> list[SessionRecord]:
        _text(user_id)
        rows = await self._db.fetch(self._sql(_USER_SESSIONS), user_id, self.clock())
        return [to_record(row) for row in rows]

    async def destroy_user_sessions(self, user_id: str, *, keep: str | None = None) -> int:
        _text(user_id, keep)
        return _rowcount(await self._db.execute(self._sql(_DESTROY_USER), user_id, keep))

    @asynccontextmanager
    async def user_lock(self, user_id: str) -> AsyncIterator[None]:
        """A session-level advisory lock named by the table and the user, tried every few
        milliseconds for up to ``timeout`` on a connection held only once it is taken
        (so waiters hold none), and released with that connection."""
        _text(user_id)
        key = _lock_key("user", f"{self._table}\x00{user_id}")
        held = AsyncExitStack()

        async def take() -> bool:
            async with AsyncExitStack() as stack:
                conn = await stack.enter_async_context(self._db.connection())
                sql = "SELECT pg_try_advisory_lock($1)"
                if not await conn.fetchval(sql, key, timeout=self.command_timeout):
                    return False
                unlock = conn.execute("SELECT pg_advisory_unlock($1)", key)
                stack.push_async_callback(settle, unlock)
                held.push_async_exit(stack.pop_all())
                return True

        await polled(take, self.timeout or 0.0, f"the session lock of a user in {self._table}")
        try:
            yield
        finally:  # closed as if nothing was raised: the caller's error is not the driver's
            await held.aclose()

    async def close(self) -> None:
        """Close the pool the store opened (never a pool it was given); reopens on next use."""
        await self._db.close()

    def _sql(self, template: str) -> str:
        """Put the validated, quoted table name into a statement."""
        return self._statements[template]

    async def _sweep_batch(self, before: datetime, batch_size: int) -> int | None:
        """Delete one batch under the sweep lock; None if another process holds the lock.

        The batch commits without waiting for its WAL flush (``synchronous_commit`` off
        for this transaction only), so sweeping does not queue readers' commits behind
        disk flushes; a batch lost in a crash holds expired rows, swept again next time.
        """
        async with self._db.connection() as conn, conn.transaction():
            locked = await conn.fetchval(
                "SELECT set_config('synchronous_commit', 'off', true) IS NOT NULL"
                " AND pg_try_advisory_xact_lock($1)",
                self._sweep_lock,
                timeout=self.command_timeout,
            )
            if not locked:
                return None
            status = await conn.execute(
                self._sql(_SWEEP), before, batch_size, timeout=self.command_timeout
            )
        return _rowcount(status)

    async def _create_table(self, conn: PoolConnectionProxy[Any]) -> None:
        """Create schema, table and indexes once, even when many processes start together."""
        async with conn.transaction():
            timeout = self.command_timeout
            await conn.execute("SELECT pg_advisory_xact_lock($1)", self._ddl_lock, timeout=timeout)
            if self.schema is not None:
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"', timeout=timeout)
            if await conn.fetchval("SELECT to_regclass($1)", self._table, timeout=timeout) is None:
                await conn.execute(self._sql(_CREATE_TABLE), timeout=timeout)
            else:
                await self._add_device_columns(conn)

    async def _add_device_columns(self, conn: PoolConnectionProxy[Any]) -> None:
        """Give a table made before devices were tracked their columns (NULL until a write
        fills them): metadata only, and the table is locked only if one is missing."""
        present = await conn.fetch(
            "SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND NOT attisdropped",
            self._table,
            timeout=self.command_timeout,
        )
        names = {row["attname"] for row in present}
        types = {"text": "TEXT", "time": "TIMESTAMPTZ"}
        missing = [
            f"ADD COLUMN IF NOT EXISTS {n} {types[k]}" for n, k in DEVICE_COLUMNS if n not in names
        ]
        if missing:
            sql = f"ALTER TABLE {self._table} {', '.join(missing)}"
            await conn.execute(sql, timeout=self.command_timeout)


def _text(*values: str | None) -> None:
    """Refuse with ValueError text PostgreSQL cannot hold (NUL, lone surrogates), which
    it would otherwise refuse as a data error, not an outage."""
    for value in values:
        if value is None:
            continue
        if "\x00" in value:
            raise ValueError(f"PostgreSQL text cannot hold a NUL character: {value[:40]!r}")
        if not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError as exc:
                reason = f"not text UTF-8 can encode ({exc.reason})"
                raise ValueError(f"{reason}: {value[:40]!r}") from None


def _row(record: SessionRecord) -> tuple[Any, ...]:
    """The values of ``COLUMNS`` for ``record``."""
    r = record
    return (r.key, r.data, r.user_id, r.created_at, r.expires_at, r.version, *_device(r))


def _device(record: SessionRecord) -> tuple[str | None, str | None, datetime | None]:
    """The device columns' values, refused with ValueError if PostgreSQL cannot hold them."""
    _text(record.user_agent, record.ip)
    return record.user_agent, record.ip, record.last_seen_at


def _storable(record: SessionRecord) -> None:
    """Refuse with ValueError a key or user id PostgreSQL cannot hold or index, and the
    two times asyncpg writes as infinity and reads back as naive datetimes."""
    for field, moment in (("created_at", record.created_at), ("expires_at", record.expires_at)):
        if moment in _INFINITIES:
            raise ValueError(f"{field}={moment!r} is stored by PostgreSQL as an infinity")
    for field, value in (("key", record.key), ("user_id", record.user_id)):
        _text(value)
        if value is not None and len(value.encode()) > _INDEXED_BYTES:
            raise ValueError(
                f"{field} is {len(value.encode())} bytes; PostgresStore indexes it, which holds"
                f" up to {_INDEXED_BYTES} bytes (UTF-8): keep user ids short, e.g. the user's"
                " primary key"
            )


def _lock_key(purpose: str, table: str) -> int:
    """A stable signed 64-bit advisory lock key for one purpose on one table."""
    digest = hashlib.sha256(f"asgi_sessions:{purpose}:{table}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _rowcount(status: str) -> int:
    """The row count at the end of a command status such as ``UPDATE 1``."""
    return int(status.rsplit(" ", 1)[-1])

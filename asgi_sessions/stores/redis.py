"""A Redis store on redis.asyncio: a hash per session, native expiry, Lua compare-and-set.

Keys, under ``prefix`` (default ``session:``)::

    {prefix}s:<key>      HASH  data, user_id (absent for None), created_at, expires_at
                               (microseconds since the epoch), version
    {prefix}u:<user_id>  ZSET  one member per session key; score = an expires_at (µs)

Why this shape, on one server and on a Redis Cluster alike:

- Every command and script touches one key, or keys of one slot, so no hash tag is
  needed: records spread over all slots by their digest and nothing can fail with
  CROSSSLOT. A prefix holding a hash tag (``{app}:``) still works and pins all to one slot.
- A record and its user's index sit in different slots and cannot change in one atomic
  step, so the index is written *before* a record names a user: a failure in between
  leaves an extra index entry, never a live record its user's index misses (revoking
  all of a user's sessions must not skip one). Every read through the index checks the
  record itself, so a stale entry is never returned.
- An index score is when to look again. Cleanup checks the records of due entries and
  drops the dead ones or moves the score to the record's expiry, so extending a session
  costs no index write; read, update and extend_lifetime each cost one round trip.
- Expiry follows ``self.clock()``: scripts get "now" as an argument. Each record also
  gets a Redis TTL of ``expires_at - clock()``, rounded up to the millisecond, so Redis
  drops it by itself without cleanup (a relative TTL, so a clock set to another year,
  as tests do, does not make Redis delete a record the store still holds live).
- count, ids and all use SCAN (on every primary of a cluster), never KEYS; SCAN may
  repeat a key while Redis resizes its table, so the keys seen are remembered.

The Lua scripts live in ``_redis_scripts``; clients, pools and error mapping in ``_redis_client``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Self, cast
from urllib.parse import parse_qsl, urlsplit

from asgi_sessions.stores import _redis_scripts as lua
from asgi_sessions.stores._redis_client import Client, RedisConnection, each, eval_by_slot, scan
from asgi_sessions.stores._urls import redact_url
from asgi_sessions.stores.base import (
    Clock,
    ProgressCallback,
    SessionExists,
    SessionRecord,
    SessionStore,
    utc_now,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_PAGE_SIZE = 1000


def _us(moment: datetime) -> int:
    """Microseconds since the epoch, exactly (a float would round)."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _moment(us: bytes) -> datetime:
    return _EPOCH + timedelta(microseconds=int(us))


class RedisStore(SessionStore):
    """Sessions in Redis or a Redis Cluster, expired natively and by the store's clock."""

    driver_url_parameters: ClassVar[frozenset[str]] = frozenset(
        {
            "db", "username", "password", "client_name", "health_check_interval",
            "socket_keepalive", "socket_read_size",
            # TLS, with rediss:// only
            "ssl_cert_reqs", "ssl_check_hostname", "ssl_ca_certs", "ssl_ca_path",
            "ssl_ca_data", "ssl_certfile", "ssl_keyfile", "ssl_password", "ssl_ciphers",
            "ssl_min_version", "ssl_include_verify_flags", "ssl_exclude_verify_flags",
        }
    )  # fmt: skip
    """Query parameters ``create_store`` leaves in the URL for redis-py. Timeouts and the
    pool size are the store's own options; what would change replies is left out."""

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Client | None = None,
        prefix: str = "session:",
        clock: Clock = utc_now,
        connect_timeout: float = 5.0,
        socket_timeout: float = 5.0,
        max_connections: int = 50,
    ) -> None:
        """Connect to ``url`` lazily (``redis+cluster://`` for a cluster), or use ``client``.

        A client passed in stays the caller's: ``close()`` leaves it open.
        """
        super().__init__(clock=clock)
        if url is not None and client is not None:
            raise TypeError("RedisStore takes a URL or a client, not both")
        self.prefix = prefix
        self._redis = RedisConnection(
            url or "redis://localhost:6379/0",
            client,
            connect_timeout=connect_timeout,
            socket_timeout=socket_timeout,
            max_connections=max_connections,
        )

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """``redis://``, ``rediss://``, ``unix://``, ``redis+cluster://``, ``rediss+cluster://``."""
        parts = urlsplit(url)
        tls_only = [name for name, _ in parse_qsl(parts.query) if name.startswith("ssl_")]
        if tls_only and not parts.scheme.lower().startswith("rediss"):
            raise ValueError(
                f"{', '.join(tls_only)} in {redact_url(url)!r} applies to TLS connections"
                " only: use rediss:// (or rediss+cluster://)"
            )
        return cls(url, **options)

    def _record_name(self, key: str) -> str:
        return f"{self.prefix}s:{key}"

    def _index_name(self, user_id: str) -> str:
        return f"{self.prefix}u:{user_id}"

    def _key_of(self, name: bytes) -> str:
        return name[len(self.prefix.encode()) + 2 :].decode()

    def _now_and_ttl(self, expires_at: datetime) -> tuple[int, int]:
        """Now in µs by the store clock, and the Redis TTL in ms (at least 1) to expires_at."""
        now = self.clock()
        return _us(now), max(1, -((now - expires_at) // _MS))

    def _parse(self, key: str, fields: dict[Any, Any], now: int) -> SessionRecord | None:
        if not fields or int(fields[b"expires_at"]) <= now:
            return None
        user_id = fields.get(b"user_id")
        return SessionRecord(
            key=key,
            data=fields[b"data"],
            user_id=None if user_id is None else user_id.decode(),
            created_at=_moment(fields[b"created_at"]),
            expires_at=_moment(fields[b"expires_at"]),
            version=int(fields[b"version"]),
        )

    async def read(self, key: str) -> SessionRecord | None:
        async with self._redis.use() as client:
            fields = await client.hgetall(self._record_name(key))
        return self._parse(key, fields, _us(self.clock()))

    @staticmethod
    def _fields(record: SessionRecord, *names: str) -> list[Any]:
        """HSET arguments for ``names``, plus user_id when set; datetimes as µs integers."""
        values = {
            "data": record.data,
            "created_at": _us(record.created_at),
            "expires_at": _us(record.expires_at),
            "version": record.version,
            "user_id": record.user_id,
        }
        pairs = [(name, values[name]) for name in (*names, "user_id")]
        return [item for name, value in pairs if value is not None for item in (name, value)]

    async def _link(self, client: Client, record: SessionRecord) -> None:
        """Add the record to its user's index: always before the record names that user."""
        assert record.user_id is not None
        await client.zadd(self._index_name(record.user_id), {record.key: _us(record.expires_at)})

    async def create(self, record: SessionRecord) -> None:
        now, ttl = self._now_and_ttl(record.expires_at)
        fields = self._fields(record, "data", "created_at", "expires_at", "version")
        async with self._redis.use() as client:
            if record.user_id is not None:
                await self._link(client, record)
            name = self._record_name(record.key)
            created = await client.register_script(lua.CREATE)([name], [now, ttl, *fields])
        if not created:
            raise SessionExists(f"a live session with key {record.key[:12]}... already exists")

    async def update(self, record: SessionRecord, *, expected_version: int) -> bool:
        now, ttl = self._now_and_ttl(record.expires_at)
        owner = "-" if record.user_id is None else f"={record.user_id}"
        args: list[Any] = [now, ttl, expected_version, owner]
        fields, name = self._fields(record, "data", "expires_at"), self._record_name(record.key)
        async with self._redis.use() as client:
            script = client.register_script(lua.UPDATE)
            result = await script([name], [*args, "0", *fields])
            if result == 1:  # the record changes hands: index it under its new user first
                await self._link(client, record)
                result = await script([name], [*args, "1", *fields])
            if result == 0:
                return False
            if result not in (owner.encode(), b"-"):  # it left a user: unlink it there
                await client.zrem(self._index_name(result[1:].decode()), record.key)
        return True

    async def destroy(self, key: str) -> None:
        async with self._redis.use() as client:
            user_id = await client.register_script(lua.DESTROY)([self._record_name(key)])
            if user_id is not None:
                await client.zrem(self._index_name(user_id.decode()), key)

    async def extend_lifetime(self, key: str, expires_at: datetime) -> None:
        now, ttl = self._now_and_ttl(expires_at)
        async with self._redis.use() as client:
            name = self._record_name(key)
            await client.register_script(lua.EXTEND)([name], [now, ttl, _us(expires_at)])

    async def cleanup_expired_sessions(
        self, *, batch_size: int = 1000, progress: ProgressCallback | None = None
    ) -> int:
        """Delete records expired by the store clock, then drop or re-score due index entries."""
        now, removed = _us(self.clock()), 0
        async with self._redis.use() as client:
            async for names in scan(client, f"{self.prefix}s:", batch_size):
                if deleted := await eval_by_slot(client, lua.DROP, names, "expired", now):
                    removed += deleted
                    if progress is not None:
                        progress(removed)
            async for indexes in scan(client, f"{self.prefix}u:", batch_size):
                for index in indexes:
                    await self._sweep_index(client, index, now, batch_size)
        return removed

    async def _sweep_index(self, client: Client, index: bytes, now: int, batch_size: int) -> None:
        """Check the records of one index's due entries; re-score the live, drop the rest."""
        owner = index[len(self.prefix.encode()) + 2 :]
        while due := cast(
            list[tuple[bytes, float]],
            await client.zrangebyscore(index, "-inf", now, 0, batch_size, withscores=True),
        ):
            names = [self._record_name(member.decode()) for member, _ in due]
            found = await each(client, "HMGET", names, "user_id", "expires_at")
            live = {
                member: int(expires)
                for (member, _), (user_id, expires) in zip(due, found, strict=True)
                if user_id == owner and expires is not None and int(expires) > now
            }
            dead: list[Any] = []  # member, score seen: removed only if the score is unchanged
            for member, score in due:
                if member not in live:
                    dead += [member, repr(score)]
            if live:
                await client.zadd(index, live)
            if dead:
                await client.register_script(lua.UNINDEX)([index], dead)
            if len(due) < batch_size:
                return

    async def clear(self) -> int:
        removed = 0
        async with self._redis.use() as client:
            for kind in ("s", "u"):
                async for names in scan(client, f"{self.prefix}{kind}:", _PAGE_SIZE):
                    unlinked = await client.unlink(*names)
                    removed += unlinked if kind == "s" else 0
        return removed

    async def count(self) -> int:
        return len(await self.ids())

    async def ids(self) -> list[str]:
        now, found = _us(self.clock()), dict[str, None]()  # a dict drops SCAN's repeats, in order
        async with self._redis.use() as client:
            async for names in scan(client, f"{self.prefix}s:", _PAGE_SIZE):
                expiries = await each(client, "HGET", names, "expires_at")
                for name, expires in zip(names, expiries, strict=True):
                    if expires is not None and int(expires) > now:
                        found[self._key_of(name)] = None
        return list(found)

    async def all(self) -> AsyncIterator[SessionRecord]:
        """Stream live records a page at a time, holding one page and the names seen so far.

        Not gated on a cluster, so the caller may use the store between records.
        """
        seen: set[bytes] = set()
        async with self._redis.use(gated=False) as client:
            async for names in scan(client, f"{self.prefix}s:", _PAGE_SIZE):
                fresh = [name for name in names if name not in seen]
                seen.update(fresh)
                found, now = await each(client, "HGETALL", fresh), _us(self.clock())
                for name, fields in zip(fresh, found, strict=True):
                    if (record := self._parse(self._key_of(name), fields, now)) is not None:
                        yield record

    async def user_sessions(self, user_id: str) -> list[SessionRecord]:
        async with self._redis.use() as client:
            members = cast(list[bytes], await client.zrange(self._index_name(user_id), 0, -1))
            keys = [member.decode() for member in members]
            found = await each(client, "HGETALL", [self._record_name(k) for k in keys])
        now = _us(self.clock())
        records = [self._parse(key, fields, now) for key, fields in zip(keys, found, strict=True)]
        mine = [r for r in records if r is not None and r.user_id == user_id]
        return sorted(mine, key=lambda r: r.created_at)

    async def destroy_user_sessions(self, user_id: str, *, keep: str | None = None) -> int:
        doomed = [r.key for r in await self.user_sessions(user_id) if r.key != keep]
        if not doomed:
            return 0
        async with self._redis.use() as client:
            names = [self._record_name(key) for key in doomed]
            removed = await eval_by_slot(client, lua.DROP, names, "user", user_id)
            await client.zrem(self._index_name(user_id), *doomed)
        return removed

    async def close(self) -> None:
        """Close the connections this store opened; a client passed in stays open."""
        await self._redis.close()

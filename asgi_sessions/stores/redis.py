"""A Redis store on redis.asyncio: a hash per session, native expiry, Lua compare-and-set.

Keys, under ``prefix`` (default ``session:``)::

    {prefix}s:<key>          HASH  data, user_id (absent for None), created_at, expires_at
                                   (microseconds since the epoch), version, and when
                                   set user_agent, ip, last_seen_at (µs)
    {prefix}u:<sha256(uid)>  ZSET  one member per session key; score = an expires_at (µs)
    {prefix}m:{<tag>}        STRING "ok" while the indexes of the tag's cluster slot are
                                   known complete (one ``{prefix}m:`` off a cluster)

Why this shape, on one server and on a Redis Cluster alike:

- The store owns exactly the names ``{prefix}s:`` or ``{prefix}u:`` followed by 64
  lowercase hex digits: record keys are SHA-256 digests, and an index is named by the
  SHA-256 of its user id, so no user id (``{`` ``*`` ``:``, NUL, a megabyte of text)
  can shape a key name. SCAN takes only names of that exact shape, so a neighbour whose
  prefix begins like ours (``app`` and ``apps:``) is never read, counted or deleted.
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
  costs no index write; read, update and extend_lifetime each cost one round trip. An
  entry is never removed on the strength of an earlier look (a record that changes
  hands keeps its former owner's entry until it is due): a concurrent login of the same
  record may have just written it again.
- A cluster node that restarts empty, or a lagging replica promoted, loses the indexes
  of its slots while records elsewhere still name their users. So each slot has a
  completeness mark, lost with the slot's data and set only by a repair that rebuilt
  every index from the records after it was placed (``repair_user_index``; cleanup runs
  one whenever a mark is missing). Listing or revoking a user's sessions reads the mark,
  then the index (a loss between the two would need a node to die and come back empty
  in between); without the mark it also scans every record, so
  "log out everywhere" never misses a session, only takes longer until the next repair.
- Readers judge expiry by ``self.clock()``: scripts get "now" as an argument. Writes
  also refuse a record expired by the server's clock (``TIME`` inside the script). Each
  record gets a Redis TTL of ``expires_at - clock()`` plus ``cleanup_grace``, rounded up
  to the millisecond, so Redis drops it by itself, as cleanup would, without cleanup (a
  relative TTL, so a clock set to another year, as tests do, does not make Redis delete
  a record the store still holds live).
- count, ids and all use SCAN (on every primary of a cluster), never KEYS; SCAN may
  repeat a key while Redis resizes its table, so the keys seen are remembered.

The Lua scripts live in ``_redis_scripts``; clients, pools and error mapping in ``_redis_client``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import secrets
from binascii import crc_hqx
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from functools import cache
from typing import Any, ClassVar, Self, cast
from urllib.parse import parse_qsl, urlsplit

from redis.asyncio.cluster import RedisCluster
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from asgi_sessions.locks import polled
from asgi_sessions.stores import _redis_scripts as lua
from asgi_sessions.stores._redis_client import (
    Client,
    RedisConnection,
    each,
    eval_by_slot,
    eval_groups,
    run_script,
    scan,
)
from asgi_sessions.stores._seen import seen_keys
from asgi_sessions.stores._tasks import settle
from asgi_sessions.stores._urls import redact_url
from asgi_sessions.stores.base import (
    Clock,
    ProgressCallback,
    SessionRecord,
    SessionStore,
    checked_record,
    from_microseconds,
    key_taken,
    to_microseconds,
    utc_now,
)

_DIGEST = re.compile(rb"[0-9a-f]{64}")
_MS = timedelta(milliseconds=1)
_PAGE_SIZE = 1000
_COMPLETE = b"ok"
log = logging.getLogger("asgi_sessions.stores.redis")


def _digest(text: str | bytes) -> str:
    """The SHA-256 hex digest of a user id, which names its index."""
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def _moment(micros: bytes) -> datetime:
    return from_microseconds(int(micros))


@cache
def _slot_tags() -> tuple[bytes, ...]:
    """A two-byte hash tag for each cluster slot, so a mark can sit beside any index.

    CRC16 maps the 65536 two-byte strings one to one onto its values, so every slot has
    four; those holding ``}`` (which would end the tag) are passed over. About 20 ms,
    once per process.
    """
    tags: dict[int, bytes] = {}
    for number in range(1 << 16):
        tag = number.to_bytes(2, "big")
        if b"}" not in tag:
            tags.setdefault(crc_hqx(tag, 0) % REDIS_CLUSTER_HASH_SLOTS, tag)
    return tuple(tags[slot] for slot in range(REDIS_CLUSTER_HASH_SLOTS))


def _pins_slot(prefix: str) -> bool:
    """Whether ``prefix`` holds a hash tag, putting all the store's keys in one slot.

    A ``{`` with no ``}`` after it, or ``{}``, would make Redis hash whole names and
    swallow the tags the store appends, so such a prefix is refused.
    """
    start = prefix.find("{")
    if start < 0:
        return False
    if prefix.find("}", start + 1) <= start + 1:
        raise ValueError(
            f"RedisStore prefix {prefix!r} opens a hash tag it does not close: use a tag"
            " such as '{app}:' to keep every key in one cluster slot, or no braces"
        )
    return True


class RedisStore(SessionStore):
    """Sessions in Redis (one server, behind Sentinel, or a Cluster), expired natively and by
    the store's clock."""

    driver_url_parameters: ClassVar[frozenset[str]] = frozenset(
        {
            "db", "username", "password", "client_name", "health_check_interval",
            "socket_keepalive", "socket_read_size",
            # the Sentinels' own credentials, with redis+sentinel:// only
            "sentinel_username", "sentinel_password",
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
        wait_for_replicas: int = 0,
        wait_timeout_ms: int | None = None,
    ) -> None:
        """Connect to ``url`` lazily (``redis+cluster://`` for a cluster, ``redis+sentinel://``
        for the primary Redis Sentinel names), or use ``client``.

        A client passed in stays the caller's: ``close()`` leaves it open.
        """
        super().__init__(clock=clock)
        if url is not None and client is not None:
            raise TypeError("RedisStore takes a URL or a client, not both")
        self.prefix = prefix
        self._one_slot = _pins_slot(prefix)
        self._warned = False  # of an index not known complete: once per store
        self.timeout = max(connect_timeout, socket_timeout)
        self._redis = RedisConnection(
            url or "redis://localhost:6379/0",
            client,
            connect_timeout=connect_timeout,
            socket_timeout=socket_timeout,
            max_connections=max_connections,
            wait_for_replicas=wait_for_replicas,
            wait_timeout_ms=wait_timeout_ms,
        )

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """``redis://``, ``rediss://``, ``unix://``, ``redis+cluster://``, ``rediss+cluster://``,
        ``redis+sentinel://``, ``rediss+sentinel://``."""
        parts = urlsplit(url)
        tls_only = [name for name, _ in parse_qsl(parts.query) if name.startswith("ssl_")]
        if tls_only and not parts.scheme.lower().startswith("rediss"):
            raise ValueError(
                f"{', '.join(tls_only)} in {redact_url(url)!r} applies to TLS connections"
                " only: use rediss:// (or rediss+cluster://, rediss+sentinel://)"
            )
        return cls(url, **options)

    @property
    def _records(self) -> bytes:
        return f"{self.prefix}s:".encode()

    @property
    def _indexes(self) -> bytes:
        return f"{self.prefix}u:".encode()

    def _record_name(self, key: str | bytes) -> bytes:
        return self._records + (key.encode() if isinstance(key, str) else key)

    def _index_name(self, user_id: str | bytes) -> bytes:
        return self._indexes + _digest(user_id).encode()

    def _key_of(self, name: bytes) -> str:
        return name[len(self._records) :].decode()

    @staticmethod
    def _checked_key(record: SessionRecord) -> None:
        """Refuse a key that is not a SHA-256 digest: only names of that shape are the
        store's (see the module notes), so such a record could be neither listed nor
        cleared."""
        if not _DIGEST.fullmatch(record.key.encode()):
            raise ValueError(
                f"RedisStore keys are SHA-256 digests in 64 lowercase hex digits, got"
                f" {record.key[:70]!r}"
            )

    def _mark(self, client: Client, index: bytes) -> bytes:
        """The completeness mark of ``index``'s cluster slot: in the same slot, so one
        script reads both."""
        mark = f"{self.prefix}m:".encode()
        if self._one_slot or not isinstance(client, RedisCluster):
            return mark
        return mark + b"{" + _slot_tags()[key_slot(index)] + b"}"

    def _marks(self, client: Client) -> list[bytes]:
        """Every completeness mark: one per cluster slot, or one in all."""
        mark = f"{self.prefix}m:".encode()
        if self._one_slot or not isinstance(client, RedisCluster):
            return [mark]
        return [mark + b"{" + tag + b"}" for tag in _slot_tags()]

    async def _scan(self, client: Client, kind: bytes, size: int) -> AsyncIterator[list[bytes]]:
        """This store's names of one ``kind`` (records or indexes), in batches from SCAN.

        Only ``kind`` followed by exactly 64 lowercase hex digits is ours: a neighbour's
        prefix may begin with ours, and keys of an older layout may linger; both are
        passed over, never read or deleted.
        """
        async for names in scan(client, kind.decode(), size):
            start = len(kind)
            if mine := [n for n in names if _DIGEST.fullmatch(n, start) and n[:start] == kind]:
                yield mine

    def _now_and_ttl(self, expires_at: datetime) -> tuple[int, int]:
        """Now in µs by the store clock, and the Redis TTL in ms (at least 1) that keeps
        the record until ``cleanup_grace`` past expires_at, as cleanup would."""
        now = self.clock()
        return to_microseconds(now), max(1, -((now - expires_at - self.cleanup_grace) // _MS))

    def _parse(self, key: str, fields: dict[Any, Any], now: int) -> SessionRecord | None:
        if not fields or int(fields[b"expires_at"]) <= now:
            return None
        user_id, user_agent, ip, seen = (
            fields.get(name) for name in (b"user_id", b"user_agent", b"ip", b"last_seen_at")
        )
        return SessionRecord(
            key=key,
            data=fields[b"data"],
            user_id=None if user_id is None else user_id.decode(),
            created_at=_moment(fields[b"created_at"]),
            expires_at=_moment(fields[b"expires_at"]),
            version=int(fields[b"version"]),
            user_agent=None if user_agent is None else user_agent.decode(),
            ip=None if ip is None else ip.decode(),
            last_seen_at=None if seen is None else _moment(seen),
        )

    async def read(self, key: str) -> SessionRecord | None:
        async with self._redis.use() as client:
            fields = await client.hgetall(self._record_name(key))
        return self._parse(key, fields, to_microseconds(self.clock()))

    @staticmethod
    def _fields(record: SessionRecord, *names: str) -> list[Any]:
        """HSET arguments for ``names``, plus user_id and the device fields when set;
        datetimes as µs integers."""
        seen = record.last_seen_at
        values = {
            "data": record.data,
            "created_at": to_microseconds(record.created_at),
            "expires_at": to_microseconds(record.expires_at),
            "version": record.version,
            "user_id": record.user_id,
            "user_agent": record.user_agent,
            "ip": record.ip,
            "last_seen_at": None if seen is None else to_microseconds(seen),
        }
        optional = ("user_id", "user_agent", "ip", "last_seen_at")
        pairs = [(name, values[name]) for name in (*names, *optional)]
        return [item for name, value in pairs if value is not None for item in (name, value)]

    async def _link(self, client: Client, record: SessionRecord) -> None:
        """Add the record to its user's index: always before the record names that user."""
        assert record.user_id is not None
        score = to_microseconds(record.expires_at)
        await client.zadd(self._index_name(record.user_id), {record.key: score})

    async def create(self, record: SessionRecord) -> None:
        """Create the record; its key must be a SHA-256 hex digest, as every key is.

        Only names of that shape are this store's (see the module notes), so a record
        under any other key could be neither listed nor cleared: it is refused.
        """
        self._checked_key(checked_record(record))
        now, ttl = self._now_and_ttl(record.expires_at)
        fields = self._fields(record, "data", "created_at", "expires_at", "version")
        async with self._redis.use() as client:
            if record.user_id is not None:
                await self._link(client, record)
            name = self._record_name(record.key)
            created = await run_script(client, lua.CREATE, [name], [now, ttl, *fields])
        if not created:
            raise key_taken(record.key)

    async def import_records(self, records: Sequence[SessionRecord]) -> Counter[str]:
        """Two scripts per cluster slot (one of each on one server), each pipelined: the
        index entries of records naming a user (written first, as always), then the
        records."""
        for record in records:
            self._checked_key(checked_record(record))
        by_name: dict[bytes | str, SessionRecord] = {
            self._record_name(record.key): record for record in records
        }
        entries: dict[bytes | str, list[Any]] = {}
        for record in records:
            if record.user_id is not None:
                score = to_microseconds(record.expires_at)
                entries.setdefault(self._index_name(record.user_id), []).extend((score, record.key))

        def links(indexes: Sequence[bytes | str]) -> list[Any]:
            return [
                item for index in indexes for item in (len(entries[index]) // 2, *entries[index])
            ]

        now = to_microseconds(self.clock())

        def copies(names: Sequence[bytes | str]) -> list[Any]:
            args: list[Any] = [now]
            for name in names:
                record = by_name[name]
                _, ttl = self._now_and_ttl(record.expires_at)
                fields = self._fields(record, "data", "created_at", "expires_at", "version")
                args.append(_netstrings([ttl, record.version, *fields]))
            return args

        async with self._redis.use() as client:
            await eval_groups(client, lua.LINK, list(entries), links)
            ran = await eval_groups(client, lua.IMPORT, list(by_name), copies)
        outcomes = ("skipped", "copied", "replaced")
        return Counter(outcomes[int(code)] for _, codes in ran for code in codes)

    async def update(self, record: SessionRecord, *, expected_version: int) -> bool:
        checked_record(record, expected_version=expected_version)
        now, ttl = self._now_and_ttl(record.expires_at)
        owner = "-" if record.user_id is None else f"={record.user_id}"
        args: list[Any] = [now, ttl, expected_version, owner]
        fields, name = self._fields(record, "data", "expires_at"), self._record_name(record.key)
        async with self._redis.use() as client:
            result = await run_script(client, lua.UPDATE, [name], [*args, "0", *fields])
            if result == 1:  # the record changes hands: index it under its new user first
                await self._link(client, record)
                result = await run_script(client, lua.UPDATE, [name], [*args, "1", *fields])
        return bool(result == 2)

    async def destroy(self, key: str, *, expected_version: int | None = None) -> bool:
        now, version = to_microseconds(self.clock()), _optional(expected_version)
        async with self._redis.use() as client:
            result = await run_script(client, lua.DESTROY, [self._record_name(key)], [now, version])
            if result == 0:
                return False
            live, owner = result
            if owner != b"-":  # the record is gone first: a cut here leaves a stale entry
                await client.zrem(self._index_name(owner[1:]), key)
        return bool(live == 1)

    async def extend_lifetime(
        self,
        key: str,
        expires_at: datetime,
        *,
        expected_version: int | None = None,
        seen_at: datetime | None = None,
    ) -> bool:
        now, ttl = self._now_and_ttl(expires_at)
        seen = "" if seen_at is None else to_microseconds(seen_at)
        args = [now, ttl, to_microseconds(expires_at), _optional(expected_version), seen]
        async with self._redis.use() as client:
            moved = await run_script(client, lua.EXTEND, [self._record_name(key)], args)
        return bool(moved == 1)

    async def delete_expired(self, before: datetime, batch_size: int) -> AsyncIterator[int]:
        """Delete the records expired by ``before`` that Redis still holds, then check the
        index entries due by then: re-score those of records still held, drop the rest."""
        limit = to_microseconds(before)
        async with self._redis.use() as client:
            async for names in self._scan(client, self._records, batch_size):
                yield await eval_by_slot(client, lua.DROP_EXPIRED, names, limit)
            async for indexes in self._scan(client, self._indexes, batch_size):
                for index in indexes:
                    await self._sweep_index(client, index, limit, batch_size)
            marks = await each(client, "GET", self._marks(client))
            if any(mark != _COMPLETE for mark in marks):
                await self._rebuild_index(client, batch_size, None)

    async def _sweep_index(self, client: Client, index: bytes, limit: int, batch_size: int) -> None:
        """Check the records of one index's entries due by ``limit``; re-score the ones
        still held for this user, drop the rest."""
        owner = index[len(self._indexes) :].decode()
        while due := cast(
            list[tuple[bytes, float]],
            await client.zrangebyscore(index, "-inf", limit, 0, batch_size, withscores=True),
        ):
            names = [self._record_name(member) for member, _ in due]
            found = await each(client, "HMGET", names, "user_id", "expires_at")
            held = {
                member: int(expires)
                for (member, _), (user_id, expires) in zip(due, found, strict=True)
                if user_id is not None
                and _digest(user_id) == owner
                and expires is not None
                and int(expires) > limit
            }
            dead: list[Any] = []  # member, score seen: removed only if the score is unchanged
            for member, score in due:
                if member not in held:
                    dead += [member, repr(score)]
            if held:
                await client.zadd(index, held)
            if dead:
                await run_script(client, lua.UNINDEX, [index], dead)
            if len(due) < batch_size:
                return

    @asynccontextmanager
    async def user_lock(self, user_id: str) -> AsyncIterator[None]:
        """A lease on ``{prefix}l:<sha256 of the user id>`` (SET NX PX, released by its
        holder only), tried every few milliseconds for up to ``timeout``. The lease runs
        out after twice the timeout, so a holder that died frees it by itself."""
        name = f"{self.prefix}l:{_digest(user_id)}".encode()
        timeout = self.timeout or 0.0
        token, lease_ms = secrets.token_hex(16), max(1, int(2000 * timeout))

        async def take() -> bool:
            async with self._redis.use() as client:
                return bool(await client.set(name, token, nx=True, px=lease_ms))

        await polled(take, timeout, f"the session lock of a user under {self.prefix!r}")
        try:
            yield
        finally:
            await settle(self._unlock(name, token))

    async def _unlock(self, name: bytes, token: str) -> None:
        async with self._redis.use() as client:
            await run_script(client, lua.UNLOCK, [name], [token])

    async def repair_user_index(
        self, *, batch_size: int = 1000, progress: ProgressCallback | None = None
    ) -> int:
        """Index every record under its user, drop entries that point at nothing, and mark
        the index complete; return how many entries were added or dropped.

        Safe to run at any time and again: it only adds what a record proves, and drops
        an entry only if, a full store timeout after it was seen dangling, it still is
        and its score is unchanged (a login in progress writes its entry just before its
        record). ``progress`` hears the number of records checked so far.
        """
        async with self._redis.use(gated=False) as client:
            added = await self._rebuild_index(client, batch_size, progress)
            dangling = await self._dangling_entries(client, batch_size)
            if dangling:
                await asyncio.sleep(self.timeout or 0)  # a write in flight lands
                dangling = await self._dangling_entries(client, batch_size, among=dangling)
            for index, pairs in dangling.items():
                await run_script(client, lua.UNINDEX, [index], pairs)
        return added + sum(len(pairs) // 2 for pairs in dangling.values())

    async def _rebuild_index(
        self, client: Client, batch_size: int, progress: ProgressCallback | None
    ) -> int:
        """Add every record naming a user to that user's index, between marking each
        slot's index as being repaired and calling it complete; return entries added."""
        repair, marks, added, checked = secrets.token_hex(8), self._marks(client), 0, 0
        await eval_by_slot(client, lua.MARK_BEGIN, marks, repair)
        async for names in self._scan(client, self._records, batch_size):
            found = await each(client, "HMGET", names, "user_id", "expires_at")
            pipe = client.pipeline(transaction=False)
            for name, (user_id, expires) in zip(names, found, strict=True):
                if user_id is not None and expires is not None:
                    entry = {self._key_of(name): int(expires)}
                    pipe.zadd(self._index_name(user_id), entry, nx=True)
            added += sum(await pipe.execute())
            checked += len(names)
            if progress is not None:
                progress(checked)
        await eval_by_slot(client, lua.MARK_DONE, marks, repair)
        return added

    async def _dangling_entries(
        self,
        client: Client,
        batch_size: int,
        among: dict[bytes, list[Any]] | None = None,
    ) -> dict[bytes, list[Any]]:
        """Index entries whose record is gone or names another user, as UNINDEX's
        member/score pairs per index; only those in ``among``, if given."""
        entries: list[tuple[bytes, bytes, Any]] = []
        if among is None:
            async for indexes in self._scan(client, self._indexes, batch_size):
                for index in indexes:
                    async for member, score in client.zscan_iter(index, count=batch_size):
                        entries.append((index, member, repr(score)))
        else:
            for index, pairs in among.items():
                entries += [(index, pairs[i], pairs[i + 1]) for i in range(0, len(pairs), 2)]
        dangling: dict[bytes, list[Any]] = {}
        for start in range(0, len(entries), batch_size):
            page = entries[start : start + batch_size]
            names = [self._record_name(member) for _, member, _ in page]
            owners = await each(client, "HGET", names, "user_id")
            for (index, member, score), owner in zip(page, owners, strict=True):
                if owner is None or self._index_name(owner) != index:
                    dangling.setdefault(index, []).extend((member, score))
        return dangling

    async def clear(self) -> int:
        removed = 0
        async with self._redis.use() as client:
            async for names in self._scan(client, self._records, _PAGE_SIZE):
                removed += await client.unlink(*names)
            async for names in self._scan(client, self._indexes, _PAGE_SIZE):
                await client.unlink(*names)
            await each(client, "UNLINK", self._marks(client))
        return removed

    async def count(self) -> int:
        """Live records, counted as they stream by: memory stays flat (see ``_live_keys``)."""
        return sum([len(keys) async for keys in self._live_keys()])

    async def ids(self) -> list[str]:
        """Keys of live records, reading only each record's expiry, not its data."""
        return [key async for keys in self._live_keys() for key in keys]

    async def _live_keys(self) -> AsyncIterator[list[str]]:
        """Keys of live records a page at a time, each once: SCAN's repeats are dropped
        by a SeenKeys, which spills to a temporary file past a few tens of thousands."""
        now = to_microseconds(self.clock())
        with seen_keys() as seen:
            async with self._redis.use() as client:
                async for names in self._scan(client, self._records, _PAGE_SIZE):
                    expiries = await each(client, "HGET", names, "expires_at")
                    live = [
                        self._key_of(name)
                        for name, expires in zip(names, expiries, strict=True)
                        if expires is not None and int(expires) > now
                    ]
                    yield seen.fresh(live)

    async def all(self) -> AsyncIterator[SessionRecord]:
        """Stream live records a page at a time, holding one page and a SeenKeys (flat
        in memory, however many keys).

        Not gated on a cluster, so the caller may use the store between records.
        """
        with seen_keys() as seen:
            async with self._redis.use(gated=False) as client:
                async for names in self._scan(client, self._records, _PAGE_SIZE):
                    fresh = seen.fresh([self._key_of(name) for name in names])
                    found = await each(client, "HGETALL", [self._record_name(k) for k in fresh])
                    now = to_microseconds(self.clock())
                    for key, fields in zip(fresh, found, strict=True):
                        if (record := self._parse(key, fields, now)) is not None:
                            yield record

    async def _user_keys(self, client: Client, user_id: str) -> list[bytes]:
        """Keys of the records that may be the user's: the index's entries, and, while
        the index's slot is not known complete, every record naming the user."""
        index = self._index_name(user_id)
        # Two commands, not one script: while the slot migrates its keys may sit on two
        # primaries, and each single-key command follows its own redirection.
        mark = await client.get(self._mark(client, index))
        members = cast(list[bytes], await client.zrange(index, 0, -1))
        if mark == _COMPLETE:
            return members
        if not self._warned:
            self._warned = True
            log.warning(
                "RedisStore: the user index under %r is not known complete (never repaired,"
                " or a node lost data), so this lookup scans every record; run"
                " 'asgi-sessions repair' or let cleanup run to make it quick again",
                self.prefix,
            )
        keys, mine = dict.fromkeys(members), user_id.encode()
        async for names in self._scan(client, self._records, _PAGE_SIZE):
            owners = await each(client, "HGET", names, "user_id")
            for name, owner in zip(names, owners, strict=True):
                if owner == mine:
                    keys[name[len(self._records) :]] = None
        return list(keys)

    async def user_sessions(self, user_id: str) -> list[SessionRecord]:
        async with self._redis.use() as client:
            keys = [key.decode() for key in await self._user_keys(client, user_id)]
            found = await each(client, "HGETALL", [self._record_name(k) for k in keys])
        now = to_microseconds(self.clock())
        records = [self._parse(key, fields, now) for key, fields in zip(keys, found, strict=True)]
        mine = [r for r in records if r is not None and r.user_id == user_id]
        return sorted(mine, key=lambda r: (r.created_at, r.key))

    async def destroy_user_sessions(self, user_id: str, *, keep: str | None = None) -> int:
        """Delete the user's records, live or expired, found through the index (and by a
        scan while the index is not known complete).

        An entry leaves the index only if its record was the user's before the delete:
        an entry whose record was not (yet) the user's may belong to a login or a change
        of user in progress, which writes the index first, and must stay.
        """
        index = self._index_name(user_id)
        async with self._redis.use() as client:
            members = await self._user_keys(client, user_id)
            doomed = [member for member in members if member.decode() != keep]
            if not doomed:
                return 0
            names = [self._record_name(member) for member in doomed]
            owners = await each(client, "HGET", names, "user_id")
            removed = await eval_by_slot(client, lua.DROP_OWNED, names, user_id)
            mine = user_id.encode()
            unlinked = [m for m, owner in zip(doomed, owners, strict=True) if owner == mine]
            if unlinked:
                await client.zrem(index, *unlinked)
        return removed

    async def close(self) -> None:
        """Close the connections this store opened; a client passed in stays open."""
        await self._redis.close()


def _netstrings(values: Sequence[Any]) -> bytes:
    """``values`` as one argument of concatenated netstrings: ``<length>:<bytes>`` each."""
    parts = [v if isinstance(v, bytes) else str(v).encode() for v in values]
    return b"".join(b"%d:%b" % (len(part), part) for part in parts)


def _optional(version: int | None) -> int | str:
    """A script argument for an optional expected version: '' means any version."""
    return "" if version is None else version

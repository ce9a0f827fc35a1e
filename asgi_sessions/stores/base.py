"""The store contract: what every session backend implements, and nothing else.

A store keeps ``SessionRecord`` rows by key. It knows keys, bytes and expiry
times; it knows nothing of HTTP, cookies, tokens or the ``Session`` dict.
Each method's docstring is the whole contract for that call; the conformance
suite in ``asgi_sessions.testing`` checks each sentence.

A store author implements the abstract methods. The base class does the
bookkeeping around them once: the batch-and-progress loop of cleanup, and
``count()``/``ids()`` built on ``all()`` (override them where the backend can
answer faster).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, ClassVar, Self

from asgi_sessions.exceptions import SessionExists, StoreUnavailable
from asgi_sessions.locks import LocalLocks

__all__ = [
    "CONTRACT",
    "DEFAULT_PAUSE_RATIO",
    "MAX_DEVICE_TEXT",
    "MAX_VERSION",
    "Clock",
    "ProgressCallback",
    "SessionExists",
    "SessionRecord",
    "SessionStore",
    "StoreUnavailable",
    "checked_record",
    "from_microseconds",
    "key_taken",
    "to_microseconds",
    "utc_now",
]

Clock = Callable[[], datetime]
"""A function returning the current time as an aware UTC datetime."""

ProgressCallback = Callable[[int], None]
"""Called by long jobs with the running total of rows handled so far."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def utc_now() -> datetime:
    """Return the current time as an aware UTC datetime: the default clock."""
    return datetime.now(UTC)


def to_microseconds(moment: datetime) -> int:
    """An aware datetime as whole microseconds since the epoch: exact, unlike a float."""
    return (moment - _EPOCH) // _MICROSECOND


def from_microseconds(micros: int) -> datetime:
    """The aware UTC datetime ``micros`` microseconds after the epoch."""
    return _EPOCH + micros * _MICROSECOND


def key_taken(key: str) -> SessionExists:
    """The error ``create`` raises when a live record already has ``key``."""
    return SessionExists(f"a live session with key {key[:12]}... already exists")


_LOCAL_LOCKS = LocalLocks()


MAX_DEVICE_TEXT = 512
"""The most characters a record's ``user_agent`` or ``ip`` may hold."""

MAX_VERSION = 2**63 - 2
"""The highest version a record may hold: one more update still fits a signed 64-bit integer."""


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """One stored session: opaque data plus what a store needs to index and expire it."""

    key: str
    """SHA-256 hex digest of the cookie token; never the token itself."""
    data: bytes
    """Serialized session data; the store never looks inside."""
    user_id: str | None
    """The user this session belongs to, indexed for listing and revoking."""
    created_at: datetime
    """When the session was first saved (aware UTC)."""
    expires_at: datetime
    """When the record stops existing for readers (aware UTC)."""
    version: int = 1
    """Bumped by every successful update; the compare-and-set token."""
    user_agent: str | None = None
    """The client's User-Agent, if the app tracks devices; kept beside the data, so a
    "your devices" list needs no decoding of it."""
    ip: str | None = None
    """The client's address (or a truncated form of it), if the app tracks devices."""
    last_seen_at: datetime | None = None
    """When the session last made a write or a slide (aware UTC), if the app tracks devices."""


def checked_record(record: SessionRecord, *, expected_version: int | None = None) -> SessionRecord:
    """Return ``record`` if every store can keep it; else raise ValueError saying what not.

    Stores call it first in ``create`` and ``update`` (with the version the update would
    bump), so a value a backend would refuse never reaches it and is never reported as
    an outage: times must be aware datetimes, the version must fit a signed 64-bit
    integer with room for one more update, and the user id must be text that UTF-8 can
    encode (no lone surrogates).
    """
    for field, moment in (("created_at", record.created_at), ("expires_at", record.expires_at)):
        if moment.utcoffset() is None:
            raise ValueError(
                f"{field}={moment!r} has no time zone; stores keep aware datetimes, e.g."
                " datetime.now(UTC)"
            )
    if record.last_seen_at is not None and record.last_seen_at.utcoffset() is None:
        raise ValueError(f"last_seen_at={record.last_seen_at!r} has no time zone")
    for field, text in (("user_agent", record.user_agent), ("ip", record.ip)):
        if text is not None and (len(text) > MAX_DEVICE_TEXT or not text.isprintable()):
            raise ValueError(
                f"{field} must be printable text of at most {MAX_DEVICE_TEXT} characters;"
                " the middleware truncates and cleans what clients send"
            )
    version = record.version if expected_version is None else expected_version
    if not -(2**63) <= version <= MAX_VERSION:
        raise ValueError(
            f"version {version} is outside what a store keeps ({-(2**63)} to {MAX_VERSION})"
        )
    if record.user_id is not None and not record.user_id.isascii():
        try:
            record.user_id.encode()
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"user_id is not text UTF-8 can encode ({exc.reason} at position {exc.start});"
                " store user ids as proper Unicode text"
            ) from None
    return record


DEFAULT_PAUSE_RATIO = 3.0
"""How long a sweep pauses after each batch, as a multiple of the batch's own time: a
sweep then takes at most a quarter of the store's time, and reads beside it keep their
speed (measured on PostgreSQL over a million rows: p99 1.6x idle, where 0 gave 4x to
6x and 2 gave 3.5x to 4x)."""


class SessionStore(ABC):
    """An async session backend.

    A record whose ``expires_at`` is at or before ``self.clock()`` does not exist for
    any reader, whether or not cleanup has removed it yet. A write never brings back a
    record that has expired by the store's clock or by its server's own clock (for an
    embedded store, this host's clock), so a worker whose clock runs slow cannot revive
    a session. Stores connect lazily on first use and reconnect when called from a
    different event loop. Any failure of the backend surfaces as ``StoreUnavailable``;
    a value the backend refuses surfaces as ``ValueError``.
    """

    persistent: bool = True
    """Whether records outlive the store object (close, then a new store, same place).

    A class attribute a store may override per instance (an in-memory SQLite is not)."""

    cleanup_grace: ClassVar[timedelta] = timedelta(minutes=15)
    """How long past its expiry a record is kept before cleanup deletes it.

    Readers stop seeing a record at ``expires_at``; cleanup waits this much longer, so a
    worker whose clock runs up to this far ahead never deletes a session that is live
    by its neighbours' clocks."""

    timeout: float | None = None
    """The longest one call may take, in seconds, if the store bounds its calls. The
    middleware bounds all of one request's store work together by the same figure."""

    def __init__(self, *, clock: Clock = utc_now) -> None:
        self.clock = clock

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Build the store from a URL; ``create_store`` calls this. Override to support it."""
        raise TypeError(f"{cls.__name__} cannot be built from a URL; construct it directly")

    # -- one record ------------------------------------------------------------------

    @abstractmethod
    async def read(self, key: str) -> SessionRecord | None:
        """Return the live record for ``key``, or None if absent or expired."""

    @abstractmethod
    async def create(self, record: SessionRecord) -> None:
        """Insert ``record`` as given; raise SessionExists (``key_taken``) if a live record
        has its key. An expired record under that key is replaced."""

    @abstractmethod
    async def update(self, record: SessionRecord, *, expected_version: int) -> bool:
        """Replace data, user_id, expires_at and the device fields (user_agent, ip,
        last_seen_at) if the stored version is ``expected_version``.

        On success the stored version becomes ``expected_version + 1`` and True is
        returned. False if the record changed since, expired, or is gone; an update
        never re-creates a record.
        """

    @abstractmethod
    async def destroy(self, key: str, *, expected_version: int | None = None) -> bool:
        """Delete the record for ``key``; True if a live record was removed.

        With ``expected_version``, delete it only if its stored version is that one (a
        retire that loses to a concurrent update returns False and removes nothing).
        A missing key is not an error: it returns False.
        """

    @abstractmethod
    async def extend_lifetime(
        self,
        key: str,
        expires_at: datetime,
        *,
        expected_version: int | None = None,
        seen_at: datetime | None = None,
    ) -> bool:
        """Set a live record's ``expires_at`` without touching its data or version.

        With ``expected_version``, only if its stored version is that one, so a slide
        never undoes a concurrent update. With ``seen_at``, also set ``last_seen_at`` to
        it (the middleware passes it only when tracking devices). True if the expiry
        moved; False if the record is gone, expired or changed.
        """

    # -- many records ----------------------------------------------------------------

    async def cleanup_expired_sessions(
        self,
        *,
        batch_size: int = 1000,
        progress: ProgressCallback | None = None,
        pause_ratio: float = DEFAULT_PAUSE_RATIO,
    ) -> int:
        """Delete records expired more than ``cleanup_grace`` ago, a batch at a time.

        Returns how many were removed; ``progress`` hears the running total after each
        batch (once with 0 when there was nothing to remove). After each batch the sweep
        pauses ``pause_ratio`` times as long as the batch took, so it takes at most
        1/(1 + pause_ratio) of the store's time and reads beside it stay as fast as
        they were (0: sweep without pausing). Between batches the event loop runs, so
        waiting requests go first and a cancellation lands there. However the loop
        ends (a progress callback that raises, a cancellation), the store's generator
        is closed at once, so the connection or lock it holds is released now, not
        when it is collected.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if not pause_ratio >= 0:  # NaN too
            raise ValueError(f"pause_ratio must be 0 or more, got {pause_ratio}")
        total = 0
        loop = asyncio.get_running_loop()
        batches = self.delete_expired(self.clock() - self.cleanup_grace, batch_size)
        try:
            started = loop.time()
            async for removed in batches:
                total += removed
                if progress is not None and removed:
                    progress(total)
                await asyncio.sleep(pause_ratio * (loop.time() - started))
                started = loop.time()
        finally:
            if isinstance(batches, AsyncGenerator):
                await batches.aclose()
        if progress is not None and total == 0:
            progress(0)
        return total

    @abstractmethod
    def delete_expired(self, before: datetime, batch_size: int) -> AsyncIterator[int]:
        """Delete records whose ``expires_at`` is at or before ``before``, in batches of at
        most ``batch_size``, yielding how many each batch removed.

        Each batch is its own short step, so readers and writers are never held up for
        long. A store may stop early when another process is already sweeping.
        """

    @abstractmethod
    async def clear(self) -> int:
        """Delete every record, live or expired; return how many were removed."""

    async def count(self) -> int:
        """Return the number of live records."""
        return sum([1 async for _ in self.all()])

    async def ids(self) -> list[str]:
        """Return the keys of all live records."""
        return [record.key async for record in self.all()]

    @abstractmethod
    def all(self) -> AsyncIterator[SessionRecord]:
        """Yield every live record once, streaming so memory stays bounded."""

    # -- a user's records --------------------------------------------------------------

    @abstractmethod
    async def user_sessions(self, user_id: str) -> list[SessionRecord]:
        """Return the live records linked to ``user_id``, oldest first."""

    @abstractmethod
    async def destroy_user_sessions(self, user_id: str, *, keep: str | None = None) -> int:
        """Delete every record of ``user_id`` except the one keyed ``keep``, whatever its
        expiry (a clock running fast must not spare a live session); return how many
        were removed."""

    async def import_records(self, records: Sequence[SessionRecord]) -> Counter[str]:
        """Store copies of ``records`` made by another store (a migration): each is
        ``copied`` where no live record has its key, ``replaced`` where a live one holds
        an older version, ``skipped`` where it holds the same or a newer one (written
        since by an app using this store); return how many of each.

        Keys, versions, times and device fields are kept as they are. This default makes
        a few calls per record, up to 32 records at a time; stores override it with a
        bulk statement or a pipeline, one round trip or two per batch.
        """
        slots = asyncio.Semaphore(32)

        async def one(record: SessionRecord) -> str:
            async with slots:
                return await self._import_one(record)

        return Counter(await asyncio.gather(*(one(record) for record in records)))

    async def _import_one(self, record: SessionRecord) -> str:
        try:
            await self.create(record)
            return "copied"
        except SessionExists:
            existing = await self.read(record.key)
        if existing is not None and existing.version >= record.version:
            return "skipped"
        if existing is not None:
            await self.destroy(record.key, expected_version=existing.version)
        try:
            await self.create(record)
        except SessionExists:
            return "skipped"  # written meanwhile by an app using this store
        return "copied" if existing is None else "replaced"

    def user_lock(self, user_id: str) -> AbstractAsyncContextManager[None]:
        """Hold ``user_id``'s lock: one holder at a time in every process that shares the
        store's records, so a login and the session limit it enforces are one step.

        Waits at most ``timeout`` seconds, then raises StoreUnavailable. This default
        holds in this process only: right for a store whose records live in it
        (MemoryStore); stores shared by processes override it.
        """
        return _LOCAL_LOCKS.hold(id(self), user_id, wait_at_most=self.timeout)

    async def repair_user_index(
        self, *, batch_size: int = 1000, progress: ProgressCallback | None = None
    ) -> int:
        """Bring a separately kept user index back in line with the records; return how
        many entries were added or dropped.

        A store that keeps the user in the record itself, as the SQL and memory stores
        do, has no index to drift from it: 0. RedisStore keeps one (see its notes).
        """
        return 0

    # -- lifecycle -------------------------------------------------------------------

    @abstractmethod
    async def close(self) -> None:
        """Release connections; the store may be used again and reconnects if so."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


CONTRACT: tuple[str, ...] = (
    "read",
    "create",
    "update",
    "destroy",
    "extend_lifetime",
    "cleanup_expired_sessions",
    "delete_expired",
    "clear",
    "count",
    "ids",
    "all",
    "user_sessions",
    "destroy_user_sessions",
    "close",
)
"""Every call of the contract, in the order above: what wrappers and suites cover."""

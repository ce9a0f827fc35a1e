"""The store contract: what every session backend implements, and nothing else.

A store keeps ``SessionRecord`` rows by key. It knows keys, bytes and expiry
times; it knows nothing of HTTP, cookies, tokens or the ``Session`` dict.
Every method below is the whole contract for that call; the conformance suite in
``asgi_sessions.testing`` checks each sentence.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

from asgi_sessions.exceptions import SessionExists, StoreUnavailable

__all__ = [
    "Clock",
    "ProgressCallback",
    "SessionExists",
    "SessionRecord",
    "SessionStore",
    "StoreUnavailable",
    "utc_now",
]

Clock = Callable[[], datetime]
"""A function returning the current time as an aware UTC datetime."""

ProgressCallback = Callable[[int], None]
"""Called by long jobs with the running total of rows handled so far."""


def utc_now() -> datetime:
    """Return the current time as an aware UTC datetime: the default clock."""
    return datetime.now(UTC)


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


class SessionStore(ABC):
    """An async session backend. Subclasses implement every abstract method.

    Records whose ``expires_at`` is at or before ``self.clock()`` do not exist for
    any reader, whether or not cleanup has removed them yet. Stores connect lazily
    on first use and reconnect when called from a different event loop. Driver
    errors surface as ``StoreUnavailable``.
    """

    persistent: bool = True
    """Whether records outlive the store object (close, then a new store, same place).

    A class attribute a store may override per instance (an in-memory SQLite is not)."""

    def __init__(self, *, clock: Clock = utc_now) -> None:
        self.clock = clock

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Build the store from a URL; ``create_store`` calls this. Override to support it."""
        raise TypeError(f"{cls.__name__} cannot be built from a URL; construct it directly")

    @abstractmethod
    async def read(self, key: str) -> SessionRecord | None:
        """Return the live record for ``key``, or None if absent or expired."""

    @abstractmethod
    async def create(self, record: SessionRecord) -> None:
        """Insert ``record`` as given; raise SessionExists if a live record has its key."""

    @abstractmethod
    async def update(self, record: SessionRecord, *, expected_version: int) -> bool:
        """Replace data, user_id and expires_at if the stored version is ``expected_version``.

        On success the stored version becomes ``expected_version + 1`` and True is
        returned. False if the record changed since, expired, or is gone; an update
        never re-creates a record.
        """

    @abstractmethod
    async def destroy(self, key: str) -> None:
        """Delete the record for ``key``; a missing key is not an error."""

    @abstractmethod
    async def extend_lifetime(self, key: str, expires_at: datetime) -> None:
        """Set a live record's ``expires_at`` without touching its data or version."""

    @abstractmethod
    async def cleanup_expired_sessions(
        self, *, batch_size: int = 1000, progress: ProgressCallback | None = None
    ) -> int:
        """Delete expired records in batches of at most ``batch_size``; return how many."""

    @abstractmethod
    async def clear(self) -> int:
        """Delete every record, live or expired; return how many were removed."""

    @abstractmethod
    async def count(self) -> int:
        """Return the number of live records."""

    @abstractmethod
    async def ids(self) -> list[str]:
        """Return the keys of all live records."""

    @abstractmethod
    def all(self) -> AsyncIterator[SessionRecord]:
        """Yield every live record, streaming so memory stays bounded."""

    @abstractmethod
    async def user_sessions(self, user_id: str) -> list[SessionRecord]:
        """Return the live records linked to ``user_id``, oldest first."""

    @abstractmethod
    async def destroy_user_sessions(self, user_id: str, *, keep: str | None = None) -> int:
        """Delete every record of ``user_id`` except the one keyed ``keep``; return how many."""

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

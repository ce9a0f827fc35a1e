"""A store in a Python dict: for tests and single-process development, never production."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Self
from urllib.parse import urlsplit

from asgi_sessions.stores._urls import redact_url
from asgi_sessions.stores.base import (
    Clock,
    ProgressCallback,
    SessionExists,
    SessionRecord,
    SessionStore,
    utc_now,
)


class MemoryStore(SessionStore):
    """Keeps records in this process only; they vanish when it exits."""

    persistent = False

    def __init__(self, *, clock: Clock = utc_now) -> None:
        super().__init__(clock=clock)
        self._records: dict[str, SessionRecord] = {}

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """``memory://`` alone: no host, path or parameters; options go to the constructor."""
        parts = urlsplit(url)
        if parts.scheme.lower() != "memory" or parts.netloc or parts.path or parts.query:
            raise ValueError(
                f"cannot read memory store URL {redact_url(url)!r}: write memory:// alone,"
                " and pass options as keyword arguments"
            )
        return cls(**options)

    def _live(self, key: str) -> SessionRecord | None:
        record = self._records.get(key)
        if record is None or record.expires_at <= self.clock():
            return None
        return record

    async def read(self, key: str) -> SessionRecord | None:
        return self._live(key)

    async def create(self, record: SessionRecord) -> None:
        if self._live(record.key) is not None:
            raise SessionExists(f"a session with key {record.key[:12]}... already exists")
        self._records[record.key] = record

    async def update(self, record: SessionRecord, *, expected_version: int) -> bool:
        current = self._live(record.key)
        if current is None or current.version != expected_version:
            return False
        self._records[record.key] = dataclasses.replace(
            current,
            data=record.data,
            user_id=record.user_id,
            expires_at=record.expires_at,
            version=expected_version + 1,
        )
        return True

    async def destroy(self, key: str) -> None:
        self._records.pop(key, None)

    async def extend_lifetime(self, key: str, expires_at: datetime) -> None:
        current = self._live(key)
        if current is not None:
            self._records[key] = dataclasses.replace(current, expires_at=expires_at)

    async def cleanup_expired_sessions(
        self, *, batch_size: int = 1000, progress: ProgressCallback | None = None
    ) -> int:
        now = self.clock()
        expired = [key for key, record in self._records.items() if record.expires_at <= now]
        for start in range(0, len(expired), batch_size):
            for key in expired[start : start + batch_size]:
                del self._records[key]
            if progress is not None:
                progress(min(start + batch_size, len(expired)))
        return len(expired)

    async def clear(self) -> int:
        removed = len(self._records)
        self._records.clear()
        return removed

    async def count(self) -> int:
        return len(await self.ids())

    async def ids(self) -> list[str]:
        return [key for key in list(self._records) if self._live(key) is not None]

    async def all(self) -> AsyncIterator[SessionRecord]:
        for key in await self.ids():
            record = self._live(key)
            if record is not None:
                yield record

    async def user_sessions(self, user_id: str) -> list[SessionRecord]:
        records = [r for r in self._records.values() if r.user_id == user_id]
        now = self.clock()
        return sorted((r for r in records if r.expires_at > now), key=lambda r: r.created_at)

    async def destroy_user_sessions(self, user_id: str, *, keep: str | None = None) -> int:
        doomed = [r.key for r in await self.user_sessions(user_id) if r.key != keep]
        for key in doomed:
            del self._records[key]
        return len(doomed)

    async def close(self) -> None:
        """Nothing to release; records stay until the object is dropped."""

"""A store in a Python dict: for tests and single-process development, never production."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import datetime
from itertools import islice
from typing import Any, Self
from urllib.parse import urlsplit

from asgi_sessions.stores._urls import redact_url
from asgi_sessions.stores.base import (
    Clock,
    SessionRecord,
    SessionStore,
    checked_record,
    key_taken,
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

    def _live(self, key: str, *, writing: bool = False) -> SessionRecord | None:
        """The record for ``key`` if live; for a write, live by this host's clock too."""
        record = self._records.get(key)
        now = max(self.clock(), utc_now()) if writing else self.clock()
        if record is None or record.expires_at <= now:
            return None
        return record

    async def read(self, key: str) -> SessionRecord | None:
        return self._live(key)

    async def create(self, record: SessionRecord) -> None:
        checked_record(record)
        if self._live(record.key) is not None:
            raise key_taken(record.key)
        self._records[record.key] = record

    async def update(self, record: SessionRecord, *, expected_version: int) -> bool:
        checked_record(record, expected_version=expected_version)
        current = self._live(record.key, writing=True)
        if current is None or current.version != expected_version:
            return False
        r = record
        self._records[r.key] = SessionRecord(  # not dataclasses.replace: every write
            current.key,
            r.data,
            r.user_id,
            current.created_at,
            r.expires_at,
            expected_version + 1,
            r.user_agent,
            r.ip,
            r.last_seen_at,
        )
        return True

    async def destroy(self, key: str, *, expected_version: int | None = None) -> bool:
        current = self._live(key)
        if current is None and expected_version is not None:
            return False
        if current is not None and expected_version not in (None, current.version):
            return False
        self._records.pop(key, None)
        return current is not None

    async def extend_lifetime(
        self,
        key: str,
        expires_at: datetime,
        *,
        expected_version: int | None = None,
        seen_at: datetime | None = None,
    ) -> bool:
        current = self._live(key, writing=True)
        if current is None or expected_version not in (None, current.version):
            return False
        seen = current.last_seen_at if seen_at is None else seen_at
        self._records[key] = dataclasses.replace(current, expires_at=expires_at, last_seen_at=seen)
        return True

    async def delete_expired(self, before: datetime, batch_size: int) -> AsyncIterator[int]:
        """Choose each batch as it is deleted: a record renewed between batches stays."""
        while True:
            expired = (key for key, record in self._records.items() if record.expires_at <= before)
            batch = list(islice(expired, batch_size))
            for key in batch:
                del self._records[key]
            yield len(batch)
            if len(batch) < batch_size:
                return

    async def clear(self) -> int:
        removed = len(self._records)
        self._records.clear()
        return removed

    async def all(self) -> AsyncIterator[SessionRecord]:
        for key in list(self._records):
            record = self._live(key)
            if record is not None:
                yield record

    async def user_sessions(self, user_id: str) -> list[SessionRecord]:
        now = self.clock()
        mine = [r for r in self._records.values() if r.user_id == user_id and r.expires_at > now]
        return sorted(mine, key=lambda r: (r.created_at, r.key))

    async def destroy_user_sessions(self, user_id: str, *, keep: str | None = None) -> int:
        doomed = [r.key for r in self._records.values() if r.user_id == user_id and r.key != keep]
        for key in doomed:
            del self._records[key]
        return len(doomed)

    async def close(self) -> None:
        """Nothing to release; records stay until the object is dropped."""

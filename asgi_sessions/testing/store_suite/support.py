"""What the store suite's tests share: its clock's start, records made to order, running
calls at once, and one sample call of every name in the contract."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TypeVar

import anyio
import pytest

from asgi_sessions.exceptions import SessionExists
from asgi_sessions.stores.base import CONTRACT, Clock, SessionRecord, SessionStore

__all__ = [
    "HOUR",
    "NOT_PERSISTENT",
    "START",
    "TINY",
    "collect",
    "concurrently",
    "contract_call",
    "create_many",
    "create_or_exists",
    "new_key",
    "new_record",
    "require_persistent",
    "sharing_one_namespace",
]

T = TypeVar("T")

START = datetime(2030, 1, 1, 8, 30, 15, 123457, tzinfo=UTC)
"""The suite's clock starts here: after today, with microseconds, to catch rounding."""

HOUR = 3600.0
TINY = timedelta(microseconds=1)

NOT_PERSISTENT = "store does not keep records across instances"
"""Why a test that needs a second store over the same records skips."""


def require_persistent(store: SessionStore) -> None:
    """Skip the test unless records outlive ``store``, so another store can see them."""
    if not store.persistent:
        pytest.skip(NOT_PERSISTENT)


@asynccontextmanager
async def sharing_one_namespace(
    make_store: Callable[[Clock], SessionStore], *clocks: Clock
) -> AsyncIterator[list[SessionStore]]:
    """One new store per clock, all over the test's namespace, as several workers (or an
    operator's host) would have; closed afterwards. Skips unless records outlive a store."""
    stores = [make_store(clock) for clock in clocks]
    try:
        require_persistent(stores[0])
        yield stores
    finally:
        for store in stores:
            await store.close()


def new_key() -> str:
    """A key as the middleware makes it: the SHA-256 hex digest of a random token."""
    return hashlib.sha256(os.urandom(32)).hexdigest()


def new_record(
    clock: Clock,
    *,
    key: str | None = None,
    data: bytes = b'{"cart": [1, 2, 3]}',
    user_id: str | None = None,
    lifetime: float = HOUR,
    age: float = 0.0,
    version: int = 1,
) -> SessionRecord:
    """A record created ``age`` seconds ago that expires ``lifetime`` seconds from now."""
    now = clock()
    return SessionRecord(
        key=key or new_key(),
        data=data,
        user_id=user_id,
        created_at=now - timedelta(seconds=age),
        expires_at=now + timedelta(seconds=lifetime),
        version=version,
    )


async def concurrently(*calls: Callable[[], Awaitable[T]]) -> list[T]:
    """Run every call at once in one task group; return their results in order."""
    results: dict[int, T] = {}

    async def run(index: int, call: Callable[[], Awaitable[T]]) -> None:
        results[index] = await call()

    async with anyio.create_task_group() as group:
        for index, call in enumerate(calls):
            group.start_soon(run, index, call)
    return [results[index] for index in range(len(calls))]


async def create_or_exists(store: SessionStore, record: SessionRecord) -> bool:
    """Create ``record``; True if this call made it, False if SessionExists was raised."""
    try:
        await store.create(record)
    except SessionExists:
        return False
    return True


async def collect(items: AsyncIterator[T]) -> list[T]:
    """Drain an async iterator (``all()``, ``delete_expired()``) into a list."""
    return [item async for item in items]


async def create_many(
    store: SessionStore, clock: Clock, number: int, *, lifetime: float = HOUR
) -> list[SessionRecord]:
    """Create ``number`` records, a hundred at a time concurrently."""
    records = [new_record(clock, lifetime=lifetime, age=n / 1000) for n in range(number)]
    for start in range(0, number, 100):
        chunk = records[start : start + 100]
        await concurrently(*[partial(store.create, record) for record in chunk])
    return records


def contract_call(
    store: SessionStore, name: str, record: SessionRecord
) -> Callable[[], Awaitable[object]]:
    """A call of ``name``, one of ``CONTRACT``, on ``store``, about ``record`` and its user.

    Suites and tests that must cover every call of the contract iterate over
    ``CONTRACT`` and get each call here, so a call added to the contract cannot be
    left out unnoticed: this raises until it is given a sample here too.
    """
    user_id = record.user_id or "ada"
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "read": partial(store.read, record.key),
        "create": partial(store.create, record),
        "update": partial(store.update, record, expected_version=record.version),
        "destroy": partial(store.destroy, record.key),
        "extend_lifetime": partial(store.extend_lifetime, record.key, record.expires_at),
        "cleanup_expired_sessions": store.cleanup_expired_sessions,
        "delete_expired": lambda: collect(store.delete_expired(record.expires_at, 100)),
        "clear": store.clear,
        "count": store.count,
        "ids": store.ids,
        "all": lambda: collect(store.all()),
        "user_sessions": partial(store.user_sessions, user_id),
        "destroy_user_sessions": partial(store.destroy_user_sessions, user_id),
        "close": store.close,
    }
    missing = set(CONTRACT) - calls.keys()
    if missing:
        raise LookupError(f"the store suite has no sample call of {sorted(missing)}")
    return calls[name]

"""What the SQL stores share: the check that lets a name be quoted into SQL, the columns
of a session row in ``SessionRecord`` order, turning such a row back into a record, and
reading a whole table a page at a time.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

from asgi_sessions.stores.base import SessionRecord

__all__ = [
    "COLUMNS",
    "DEVICE_COLUMNS",
    "Row",
    "Statements",
    "by_pages",
    "checked_identifier",
    "to_record",
]

COLUMNS = "key, data, user_id, created_at, expires_at, version, user_agent, ip, last_seen_at"
"""A session row's columns, in the order ``SessionRecord`` takes its fields."""


class Statements(dict[str, str]):
    """Statement templates with the store's names put in, each filled in once: a store
    call looks its statement up instead of formatting it again."""

    def __init__(self, **names: str) -> None:
        super().__init__()
        self._names = names

    def __missing__(self, template: str) -> str:
        statement = self[template] = template.format(**self._names)
        return statement


class Row(Protocol):
    """A row as the drivers return it: a tuple (sqlite3) or an ``asyncpg.Record``."""

    def __getitem__(self, index: int, /) -> Any: ...

    def __iter__(self) -> Iterator[Any]: ...


R = TypeVar("R", bound=Row)
"""The row type of one driver."""

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def checked_identifier(option: str, name: str) -> str:
    """Return ``name`` if it is a plain SQL identifier, safe to quote into a statement.

    Anything else is a ValueError naming the ``option`` it was passed as.
    """
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(
            f"{option}={name!r} is not a plain SQL identifier: use up to 63 letters, digits"
            " and underscores, not starting with a digit"
        )
    return name


def _as_is(moment: Any) -> datetime:
    when: datetime = moment
    return when


def to_record(row: Row, moment: Callable[[Any], datetime] = _as_is) -> SessionRecord:
    """A record from a row of ``COLUMNS``; ``moment`` reads a stored time as a datetime."""
    key, data, user_id, created_at, expires_at, version, user_agent, ip, last_seen_at = row
    return SessionRecord(
        key,
        bytes(data),
        user_id,
        moment(created_at),
        moment(expires_at),
        int(version),
        user_agent,
        ip,
        None if last_seen_at is None else moment(last_seen_at),
    )


DEVICE_COLUMNS = (("user_agent", "text"), ("ip", "text"), ("last_seen_at", "time"))
"""The columns a table made before devices were tracked lacks, with their kind: a store
adds each that is missing, as its own SQL type, when it prepares its table."""


async def by_pages(
    page_after: Callable[[str], Awaitable[Sequence[R]]], page_size: int
) -> AsyncIterator[R]:
    """Yield the rows of ``page_after(key)`` (at most ``page_size`` rows whose first
    column, the key, is after ``key``, in key order), one page per query.

    Keyset pagination: each page starts after the last key seen, so memory stays bounded
    and no page costs more than the first, however far into the table it is.
    """
    after = ""
    while True:
        rows = await page_after(after)
        for row in rows:
            yield row
        if len(rows) < page_size:
            return
        after = rows[-1][0]

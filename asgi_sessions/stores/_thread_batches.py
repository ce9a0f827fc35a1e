"""Calls to an aiosqlite connection's thread, sent over in batches.

aiosqlite hands each call to its connection's thread on its own and answers each on its
own: a wake-up of the thread, then a write to the event loop's self-pipe to wake the
loop. Under concurrent requests those hand-offs, not SQLite, take most of the time
(kernel scheduling was about a fifth of a SQLite write request at 50 clients).
Here the calls made while the thread is busy wait together: the thread runs them one
after another, as aiosqlite would, and answers all of them with one wake-up of the loop.
A lone call costs what it did.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import aiosqlite

from asgi_sessions.stores._turn_batches import answer

__all__ = ["ThreadBatches"]

_T = TypeVar("_T")
_Call = tuple[Callable[[sqlite3.Connection], Any], "asyncio.Future[Any]"]


class ThreadBatches:
    """Run functions of the sqlite3 connection on its aiosqlite thread, in batches.

    Bound to the running event loop when made. Uses aiosqlite's own queue to reach the
    thread (it has no public way to run a function there), so a batch also keeps its
    place among the connection's other calls.
    """

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self.connection = connection
        self.trips = 0
        """How many batches have gone to the thread: fewer than the calls, under load."""
        self._loop = asyncio.get_running_loop()
        self._lock = threading.Lock()
        self._waiting: list[_Call] = []

    def run(self, call: Callable[[sqlite3.Connection], _T]) -> asyncio.Future[_T]:
        """``call(sqlite3_connection)`` on the connection's thread; its result or error.

        A call once made runs even if its awaiter is cancelled, as with aiosqlite.
        Raises ValueError, as aiosqlite does, once the connection is closed.
        """
        if not self.connection._running:
            raise ValueError("Connection closed")
        future: asyncio.Future[_T] = self._loop.create_future()
        with self._lock:
            self._waiting.append((call, future))
            first = len(self._waiting) == 1
        if first:  # no batch is on its way that will take this call: send one
            self.trips += 1
            self.connection._tx.put_nowait((None, self._run_batch))
        return future

    def _run_batch(self) -> None:
        """On the connection's thread: run every waiting call, then answer them at once."""
        with self._lock:
            batch, self._waiting = self._waiting, []
        raw = self.connection._connection
        outcomes: list[tuple[asyncio.Future[Any], Any]] = []
        for call, future in batch:
            try:
                if raw is None:
                    raise ValueError("no active connection")
                outcomes.append((future, call(raw)))
            except BaseException as exc:  # the caller's to handle, as aiosqlite does
                outcomes.append((future, exc))
        self._loop.call_soon_threadsafe(_answer_all, outcomes)


def _answer_all(outcomes: list[tuple[asyncio.Future[Any], Any]]) -> None:
    """On the event loop: give each caller its result or error."""
    for future, outcome in outcomes:
        answer(future, outcome)

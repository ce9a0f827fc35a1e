"""Deadlines for store calls, kept by one timer per event loop rather than one per call.

A timer per call (``asyncio.timeout``, an anyio scope with a deadline) costs a heap
entry pushed and cancelled on every store call, and a cancel scope's bookkeeping on
top: about a fifth of a SQLite read's throughput at 50 clients. Here a call only adds
itself to the loop's watch list; one timer, armed for the earliest deadline, wakes
when that deadline is due, cancels the calls that are late, and arms itself again.

The cancellation is a plain task cancellation, counted as ``asyncio.timeout`` counts
its own (``Task.uncancel``), so a cancellation from elsewhere is never mistaken for
the deadline. Like an anyio scope, and unlike ``asyncio.timeout``, it is repeated
until the call ends: some drivers swallow a cancellation and carry on (redis-py
does, at times). Stores give connections back with ``stores._tasks.uninterrupted``,
which no cancellation cuts short.
"""

from __future__ import annotations

import asyncio
import math
import weakref
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["within"]

_T = TypeVar("_T")

RETRY_AFTER = 0.01
"""Seconds between cancellations of a late call that has not ended yet."""


class _Watch:
    """One call in progress: its task and the loop time it must be done by."""

    __slots__ = ("cancels", "deadline", "task")

    def __init__(self, task: asyncio.Task[object], deadline: float) -> None:
        self.task = task
        self.deadline = deadline
        self.cancels = 0
        """How many times the deadline has cancelled the task."""


class _Watchdog:
    """The calls in progress on one loop, and the one timer that ends the late ones."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._watched: set[_Watch] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._wakes_at = math.inf

    def watch(self, task: asyncio.Task[object], deadline: float) -> _Watch:
        watch = _Watch(task, deadline)
        self._watched.add(watch)
        if deadline < self._wakes_at:  # rare: calls mostly arrive in deadline order
            self._arm(deadline)
        return watch

    def forget(self, watch: _Watch) -> None:
        self._watched.discard(watch)

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._wakes_at = when
        self._timer = self.loop.call_at(when, self._wake)

    def _wake(self) -> None:
        """Cancel every call whose deadline has come (again, if it has not ended since
        the last time); wake again for the next deadline, or to cancel again."""
        self._timer, self._wakes_at = None, math.inf
        now, next_wake = self.loop.time(), math.inf
        for watch in self._watched:
            if watch.deadline <= now:
                watch.cancels += 1
                watch.task.cancel()
                next_wake = min(next_wake, now + RETRY_AFTER)
            else:
                next_wake = min(next_wake, watch.deadline)
        if next_wake < math.inf:
            self._arm(next_wake)


_watchdogs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Watchdog] = (
    weakref.WeakKeyDictionary()
)
_latest: _Watchdog | None = None
"""The watchdog used last: nearly always the one asked for next, found without the
weak dictionary's lookup (which makes a weak reference on every call). It keeps that
one loop alive until another loop asks; the loops before it are held only weakly."""


def _watchdog_of(loop: asyncio.AbstractEventLoop) -> _Watchdog:
    """The loop's watchdog, made on first use."""
    global _latest
    watchdog = _watchdogs.get(loop)
    if watchdog is None:
        watchdog = _watchdogs[loop] = _Watchdog(loop)
    _latest = watchdog
    return watchdog


async def within(work: Awaitable[_T], seconds: float) -> _T:
    """Await ``work``, cancelled after ``seconds``; then raise TimeoutError.

    As ``asyncio.timeout``, without a timer of its own. The deadline is kept to within
    the loop's own timer resolution.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task(loop)
    assert task is not None, "within() runs inside a task"
    watchdog = _latest
    if watchdog is None or watchdog.loop is not loop:
        watchdog = _watchdog_of(loop)
    watch = watchdog.watch(task, loop.time() + max(seconds, 0))
    try:
        result = await work
    except asyncio.CancelledError:
        if watch.cancels and _uncancel(task, watch.cancels) == 0:  # only the deadline's
            raise TimeoutError(f"not done within {seconds:g} s") from None
        raise
    finally:
        watchdog.forget(watch)
    if watch.cancels:  # the work absorbed them, and ended anyway
        _uncancel(task, watch.cancels)
    return result


def _uncancel(task: asyncio.Task[object], times: int) -> int:
    """Take back ``times`` cancellations of ``task``; return how many others remain."""
    remaining = task.cancelling()
    for _ in range(times):
        remaining = task.uncancel()
    return remaining

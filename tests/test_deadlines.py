"""The per-loop deadline keeper: late calls end in TimeoutError, and nothing else does."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from asgi_sessions.deadlines import within

pytestmark = pytest.mark.anyio


async def test_work_done_in_time_returns_its_result() -> None:
    async def quick() -> int:
        await asyncio.sleep(0)
        return 7

    assert await within(quick(), 1.0) == 7


async def test_late_work_is_cancelled_and_raises_timeout_error() -> None:
    cancelled = False

    async def slow() -> None:
        nonlocal cancelled
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled = True
            raise

    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        await within(slow(), 0.05)
    assert cancelled
    assert 0.05 <= loop.time() - started < 1.0
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0  # the task may be cancelled again


async def test_work_that_swallows_a_cancellation_is_cancelled_again() -> None:
    """A driver that drops a cancellation and carries on is still ended at once."""

    async def swallowing() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(10)
        await asyncio.sleep(10)  # carries on as if nothing happened

    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        await within(swallowing(), 0.05)
    assert loop.time() - started < 1.0
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0


async def test_each_call_keeps_its_own_deadline_whatever_the_order() -> None:
    """A short deadline after a long one still fires on time (the timer is re-armed)."""

    async def sleeper(seconds: float, budget: float) -> str:
        try:
            await within(asyncio.sleep(seconds), budget)
        except TimeoutError:
            return "late"
        return "done"

    loop = asyncio.get_running_loop()
    started = loop.time()
    results = await asyncio.gather(
        sleeper(0.5, 5.0), sleeper(10, 0.1), sleeper(0.01, 0.2), sleeper(10, 0.3)
    )
    assert list(results) == ["done", "late", "done", "late"]
    assert loop.time() - started < 2.0


async def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    async def call() -> None:
        await within(asyncio.sleep(10), 5.0)

    task = asyncio.create_task(call())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_cancellation_from_elsewhere_during_a_late_call_is_not_swallowed() -> None:
    """Both the deadline and the caller cancel: the caller's cancellation wins."""
    absorbed = asyncio.Event()

    async def stubborn() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(10)  # the deadline's cancellation lands here
        absorbed.set()
        await asyncio.sleep(10)  # the caller's lands here

    async def call() -> None:
        with contextlib.suppress(TimeoutError):
            await within(stubborn(), 0.05)

    task = asyncio.create_task(call())
    await absorbed.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_work_that_absorbs_the_cancellation_leaves_the_task_uncancelled() -> None:
    """Clean-up that finishes through a cancellation (a connection given back) returns
    its result; the task is then as if never cancelled."""

    async def stubborn() -> str:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(10)
        await asyncio.sleep(0)
        return "settled"

    assert await within(stubborn(), 0.05) == "settled"
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0.01)  # no cancellation is left pending for the next await


async def test_many_calls_on_one_loop_share_one_timer() -> None:
    loop = asyncio.get_running_loop()
    before = len(loop._scheduled)  # type: ignore[attr-defined]
    gate = asyncio.Event()
    calls = [asyncio.create_task(within(gate.wait(), 5.0)) for _ in range(100)]
    await asyncio.sleep(0)
    assert len(loop._scheduled) - before == 1  # type: ignore[attr-defined]
    gate.set()
    assert all(await asyncio.gather(*calls))


def test_each_event_loop_keeps_its_own_deadlines_when_loops_alternate() -> None:
    """The keeper remembers the loop it served last; a call on another loop, and then
    on the first again, must still be watched by a keeper of its own loop."""

    async def late() -> bool:
        try:
            await within(asyncio.sleep(10), 0.02)
        except TimeoutError:
            return True
        return False

    first, second = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        for loop in (first, second, first, second):
            assert loop.run_until_complete(late())
    finally:
        first.close()
        second.close()

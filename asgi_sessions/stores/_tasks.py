"""Running a store's steps to their end even when the caller is cancelled.

A cancel scope (anyio's, Starlette's) cancels its task again at every await. A step cut
off there can leave a driver's connection half-read, or a record written to one tier and
not the other. Such steps run in a task of their own, which the caller's cancellation
does not reach: the caller waits for it (the store's timeouts bound it), then ends
cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from contextlib import suppress
from typing import Any, TypeVar

__all__ = ["settle", "uninterrupted"]

T = TypeVar("T")


async def uninterrupted(step: Coroutine[Any, Any, T]) -> T:
    """Run ``step`` to its end; if the caller is cancelled meanwhile, wait for the end,
    then raise the cancellation (the step's outcome stands, its result is dropped)."""
    task = asyncio.ensure_future(step)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await settle(task)
        raise


async def settle(work: Coroutine[Any, Any, Any] | asyncio.Future[Any]) -> None:
    """Wait for ``work`` to end even if the caller is cancelled meanwhile; its own
    failure is ignored, for it is cleanup after an outcome that stands."""
    task = asyncio.ensure_future(work)
    while not task.done():
        with suppress(asyncio.CancelledError):
            await asyncio.shield(task)
    with suppress(BaseException):
        task.result()

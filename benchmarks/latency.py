"""Percentiles, and readers that time ``store.read`` while something else runs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from asgi_sessions.stores.base import SessionStore


def percentile(values: Sequence[float], share: float) -> float:
    """The ``share`` (0..1) percentile of ``values`` by nearest rank; 0.0 if empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def summary_ms(values: Sequence[float]) -> dict[str, float]:
    """p50 and p99 of durations in seconds, as milliseconds."""
    return {
        "p50_ms": round(percentile(values, 0.50) * 1e3, 4),
        "p99_ms": round(percentile(values, 0.99) * 1e3, 4),
        "samples": len(values),
    }


async def read_until(
    store: SessionStore, keys: Sequence[str], stop: asyncio.Event, timings: list[float]
) -> None:
    """One reader task per key, each reading its session in a loop until ``stop`` is set;
    every read's duration is appended to ``timings``."""

    async def reader(key: str) -> None:
        while not stop.is_set():
            start = time.perf_counter()
            record = await store.read(key)
            timings.append(time.perf_counter() - start)
            if record is None:
                raise RuntimeError("a live session vanished while being read")
            await asyncio.sleep(0)

    await asyncio.gather(*(reader(key) for key in keys))


async def read_for(store: SessionStore, keys: Sequence[str], samples: int) -> list[float]:
    """Concurrent readers as in ``read_until``, together making about ``samples`` reads."""
    timings: list[float] = []

    async def reader(key: str) -> None:
        for _ in range(max(1, samples // len(keys))):
            start = time.perf_counter()
            await store.read(key)
            timings.append(time.perf_counter() - start)
            await asyncio.sleep(0)

    await asyncio.gather(*(reader(key) for key in keys))
    return timings

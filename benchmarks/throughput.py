"""Requests per second of every variant and floor, side by side in one event loop,
and the store round trips our middleware makes per request.

Every (variant, route, concurrency) cell is measured ``reps`` times, the cells
interleaved so that a burst of load from elsewhere on the machine hits all of them
alike; the median is reported.
"""

from __future__ import annotations

import gc
import secrets
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp

from asgi_sessions.testing.recording import RecordingStore
from benchmarks import load
from benchmarks.apps import LAZY, OURS, VARIANTS, Built, available, build
from benchmarks.floors import FLOORS, Floor, build_floor
from benchmarks.settings import Env

ROUTES = (  # label, path, whether the client holds a session cookie
    ("untouched", "/untouched", False),
    ("untouched+cookie", "/untouched", True),
    ("read", "/read", True),
    ("write", "/write", True),
)
FLOOR_ROUTES = ("read", "write")


@dataclass
class Target:
    """One app under test and its prepared clients (with and without a cookie)."""

    name: str
    app: ASGIApp
    with_cookie: list[load.Client]
    without_cookie: list[load.Client] = field(default_factory=list)


@dataclass
class Cell:
    target: Target
    route: str
    path: str
    concurrency: int
    cookie: bool
    runs: list[float] = field(default_factory=list)

    def clients(self) -> list[load.Client]:
        pool = self.target.with_cookie if self.cookie else self.target.without_cookie
        return pool[: self.concurrency]

    def row(self) -> dict[str, Any]:
        return {
            "variant": self.target.name,
            "route": self.route,
            "concurrency": self.concurrency,
            "rps": statistics.median(self.runs),
            "runs": [round(run, 1) for run in self.runs],
        }


async def _variant_target(built: Built, clients: int) -> Target:
    """Clients that first hit ``/write`` once to get a session, as a browser would."""
    with_cookie = [load.Client() for _ in range(clients)]
    for client in with_cookie:
        await client.call(built.app, "/write")
        if client.cookie is None:  # the bare app sets none: send a token-shaped one anyway
            client.cookie = secrets.token_urlsafe(32).encode()
    without = [load.Client() for _ in range(clients)]
    return Target(built.name, built.app, with_cookie, without)


async def _floor_target(floor: Floor, clients: int) -> Target:
    return Target(
        floor.name, floor.app, [load.Client(await floor.new_client()) for _ in range(clients)]
    )


async def _measure(cells: list[Cell], reps: int, seconds: float, warmup: float) -> None:
    for cell in cells:  # warm-up: caches, pools, connections, JIT-less but still real
        await load.direct_rate(cell.target.app, cell.path, cell.clients(), warmup)
    for _ in range(reps):
        for cell in cells:
            gc.collect()
            cell.runs.append(
                await load.direct_rate(cell.target.app, cell.path, cell.clients(), seconds)
            )


async def _httpx(targets: list[Target], env: Env) -> list[dict[str, Any]]:
    """The read route through httpx's ASGITransport: secondary, transport-bound numbers."""
    size, rows = env.size, []
    cells: list[tuple[str, int, list[Any], list[float]]] = []
    for target in targets:
        for concurrency in size.concurrency:
            cookies = [client.cookie for client in target.with_cookie[:concurrency]]
            cells.append((target.name, concurrency, load.httpx_clients(target.app, cookies), []))
    for name, _, clients, _ in cells:
        _, errors = await load.httpx_rate(clients, "/read", size.warmup)
        if errors:
            env.notes.append(f"httpx: {name} answered {errors} errors on /read")
    for _ in range(max(2, size.reps // 2)):
        for _, _, clients, runs in cells:
            gc.collect()
            runs.append((await load.httpx_rate(clients, "/read", size.seconds))[0])
    for name, concurrency, clients, runs in cells:
        rows.append(
            {
                "variant": name,
                "route": "read",
                "concurrency": concurrency,
                "rps": statistics.median(runs),
                "runs": [round(run, 1) for run in runs],
            }
        )
        for client in clients:
            await client.aclose()
    return rows


async def run(env: Env, *, with_httpx: bool = True) -> dict[str, Any]:
    """Measure every available variant and floor; return rows for the report."""
    size = env.size
    clients = max(size.concurrency)
    built = [build(name, env) for name in VARIANTS if available(name, env) and env.wanted(name)]
    floors = [
        await build_floor(name, env)
        for name in FLOORS
        if available(name, env) and env.wanted(name)
    ]
    try:
        targets = [await _variant_target(b, clients) for b in built]
        targets += [await _floor_target(f, clients) for f in floors]
        cells = [
            Cell(target, label, path, concurrency, cookie)
            for concurrency in size.concurrency
            for target in targets
            for label, path, cookie in ROUTES
            if not target.name.startswith("floor-") or label in FLOOR_ROUTES
        ]
        await _measure(cells, size.reps, size.seconds, size.warmup)
        for target in targets:
            errors = sum(c.errors for c in target.with_cookie + target.without_cookie)
            if errors:
                env.notes.append(f"{target.name} answered {errors} requests with an error")
        result: dict[str, Any] = {"direct": [cell.row() for cell in cells]}
        if with_httpx:
            result["httpx"] = await _httpx(targets, env)
        return result
    finally:
        for variant in built:
            await variant.close()
        for floor in floors:
            await floor.close()


async def round_trips(env: Env, requests: int = 20) -> dict[str, dict[str, dict[str, float]]]:
    """Store calls per request for each of our stores and routes, counted by RecordingStore."""
    result: dict[str, dict[str, dict[str, float]]] = {}
    for name in (*OURS, *LAZY):
        if not available(name, env):
            continue
        built = build(name, env, record=True)
        store = built.store
        assert isinstance(store, RecordingStore)
        try:
            rows: dict[str, dict[str, float]] = {}
            browser = load.Client()
            await browser.call(built.app, "/write")
            for label, path, cookie in ROUTES:
                store.reset()
                for _ in range(requests):
                    await (browser if cookie else load.Client()).call(built.app, path)
                rows[label] = _per_request(store.calls, requests)
            store.reset()
            for _ in range(requests):
                await load.Client().call(built.app, "/write")
            rows["write (first visit)"] = _per_request(store.calls, requests)
            result[name] = rows
        finally:
            await built.close()
    return result


def _per_request(calls: list[str], requests: int) -> dict[str, float]:
    counts = Counter(calls)
    per = {name: count / requests for name, count in sorted(counts.items())}
    per["total"] = len(calls) / requests
    return per

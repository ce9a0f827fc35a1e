"""Clients that keep using an app through a fault, and the figures a fault scenario reports.

``Traffic`` drives the test app (``asgi_sessions.testing.app``) with a few logged-in
clients, counts what came back, and remembers every write the app acknowledged with a
200, so that after recovery it can tell how many of them were lost. ``report()`` prints
a scenario's figures and keeps them in ``tests/artifacts/faults.json``.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
from starlette.types import ASGIApp

from asgi_sessions.stores import create_store
from asgi_sessions.testing.app import build_app
from asgi_sessions.testing.clock import FrozenClock

ARTIFACT = Path(__file__).resolve().parents[1] / "artifacts" / "faults.json"
RECOVERY_DEADLINE = 30.0
"""Longest wait, in seconds, for the app to serve sessions again after a fault ends."""


@dataclasses.dataclass
class Figures:
    """What one fault scenario cost the clients."""

    scenario: str
    sent: int = 0
    unavailable: int = 0
    """Answers 503 Service Unavailable."""
    errors: int = 0
    """Answers 500 or any 5xx other than 503: must stay 0."""
    lost: int = 0
    """Writes answered 200 that could not be read back after recovery."""
    recovery_seconds: float = 0.0
    """From the end of the fault to the first session request served again."""
    slowest_seconds: float = 0.0
    """The longest single request while the fault lasted."""
    untouched_slowest_seconds: float = 0.0
    """The longest request that never used the session, while the fault lasted. With a
    cookie it still waits for the session's load, which the middleware does up front."""
    note: str = ""


CLIENTS = 4
"""Clients of a scenario, each with its own session, all sending at once."""


class Traffic:
    """``count`` clients of ``app``, each with its own session cookie."""

    def __init__(self, app: ASGIApp, figures: Figures, count: int = CLIENTS) -> None:
        self.figures = figures
        self.transport = httpx.ASGITransport(app)
        self.clients = [
            httpx.AsyncClient(transport=self.transport, base_url="http://testserver")
            for _ in range(count)
        ]
        self.acknowledged: list[dict[str, Any]] = [{} for _ in self.clients]
        self.during_fault = False

    async def __aenter__(self) -> Traffic:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for client in self.clients:
            await client.aclose()

    async def send(self, index: int, method: str, path: str, body: Any = None) -> int:
        """One request of client ``index``; counted, timed, and remembered if a write."""
        started = time.perf_counter()
        kwargs = {} if body is None else {"json": body}
        response = await self.clients[index].request(method, path, **kwargs)
        elapsed = time.perf_counter() - started
        figures = self.figures
        figures.sent += 1
        if self.during_fault:
            figures.slowest_seconds = max(figures.slowest_seconds, elapsed)
            if path == "/untouched":
                figures.untouched_slowest_seconds = max(figures.untouched_slowest_seconds, elapsed)
        if response.status_code == 503:
            assert response.headers["retry-after"], "a 503 says when to retry"
            assert "set-cookie" not in response.headers, "a 503 never touches the cookie"
            figures.unavailable += 1
        elif response.status_code >= 500:
            figures.errors += 1
        elif path.startswith("/set/") and response.status_code == 200:
            self.acknowledged[index][path.removeprefix("/set/")] = body
        return response.status_code

    async def everyone(self, method: str, path: str, body: Any = None) -> list[int]:
        """The same request from every client at once; their statuses in client order."""
        statuses = [0] * len(self.clients)

        async def one(index: int) -> None:
            value = body if body is None else f"{body}-{index}"
            statuses[index] = await self.send(index, method, path, value)

        async with anyio.create_task_group() as group:
            for index in range(len(self.clients)):
                group.start_soon(one, index)
        return statuses

    async def login(self) -> None:
        """Log every client in, each as its own user, and have it write once.

        The first request of a worker opens its pool and may create the table, through
        the proxy, within one request's store deadline: on a loaded machine that can
        answer 503, so a cold start is given a few tries before the scenario begins.
        """
        for attempt in range(5):
            if await self.send(0, "POST", "/login/user0") == 200:
                break
            await anyio.sleep(0.2 * (attempt + 1))
        else:
            raise AssertionError("the app never served a first login")
        self.figures.sent = self.figures.unavailable = 0
        for index in range(1, len(self.clients)):
            assert await self.send(index, "POST", f"/login/user{index}") == 200
        # Every client at once, twice: the pool opens a connection for each beforehand,
        # so the scenario measures the fault, not connections opened through it.
        for _ in range(2):
            statuses = await self.everyone("POST", "/set/before", "written")
            assert statuses == [200] * len(self.clients)

    async def during(self, rounds: int) -> None:
        """``rounds`` of writes and of requests that never touch the session."""
        self.during_fault = True
        try:
            for number in range(rounds):
                await self.everyone("POST", f"/set/during{number}", "written")
                untouched = await self.everyone("GET", "/untouched")
                assert untouched == [200] * len(self.clients), "no session, no failure"
        finally:
            self.during_fault = False

    async def recover(self) -> float:
        """Poll with writes until one is served; return how long that took."""
        started = time.perf_counter()
        with anyio.fail_after(RECOVERY_DEADLINE):
            attempt = 0
            while await self.send(0, "POST", f"/set/recovery{attempt}", "written") != 200:
                attempt += 1
                await anyio.sleep(0.05)
        self.figures.recovery_seconds = time.perf_counter() - started
        statuses = await self.everyone("POST", "/set/after", "written")
        assert statuses == [200] * len(self.clients), "every client is served once recovered"
        return self.figures.recovery_seconds

    async def count_lost(self) -> int:
        """Read every client's session back; count acknowledged writes missing from it."""
        lost = 0
        for client, acknowledged in zip(self.clients, self.acknowledged, strict=True):
            response = await client.get("/read")
            assert response.status_code == 200
            data = response.json()["data"]
            lost += sum(data.get(key) != value for key, value in acknowledged.items())
        self.figures.lost = lost
        return lost


Step = Callable[[], Awaitable[Any] | None]
"""Breaks or mends the store: a plain call, or one returning something to await."""


async def outage(
    url: str,
    clock: FrozenClock,
    figures: Figures,
    *,
    fault: Step,
    heal: Step,
    after: Callable[[Traffic], Awaitable[None]] | None = None,
) -> None:
    """One fault scenario: clients log in, ``fault()`` breaks the store, they keep
    going for three rounds, ``heal()`` mends it, the app must recover by itself, then
    ``after`` runs and acknowledged writes are counted; the figures are reported."""
    store = create_store(url, clock=clock)
    try:
        async with Traffic(build_app(store), figures) as traffic:
            await traffic.login()
            await _run(fault)
            await traffic.during(rounds=3)
            await _run(heal)
            await traffic.recover()
            if after is not None:
                await after(traffic)
            await traffic.count_lost()
    finally:
        report(figures)
        await store.close()


async def _run(step: Step) -> None:
    result = step()
    if inspect.isawaitable(result):
        await result


def report(figures: Figures) -> None:
    """Print a scenario's figures and merge them into tests/artifacts/faults.json."""
    row = dataclasses.asdict(figures)
    print(
        f"\n[fault] {figures.scenario}: sent={figures.sent} 503={figures.unavailable} "
        f"500={figures.errors} lost={figures.lost} "
        f"recovered_in={figures.recovery_seconds:.2f}s slowest={figures.slowest_seconds:.2f}s"
        + (f" ({figures.note})" if figures.note else "")
    )
    save("scenarios", figures.scenario, row)


def save(section: str, name: str, row: dict[str, Any]) -> None:
    """Keep ``row`` under ``section``/``name`` in the artifact, beside earlier runs' rows."""
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    try:
        everything = json.loads(ARTIFACT.read_text())
    except (FileNotFoundError, ValueError):
        everything = {}
    everything.setdefault(section, {})[name] = row
    ARTIFACT.write_text(json.dumps(everything, indent=2, sort_keys=True) + "\n")

"""Many clients writing to their sessions while a store's primary is killed under them.

``Load`` drives CLIENTS logged-in clients over the test app (``asgi_sessions.testing.app``),
spread over several app workers (two apps with a store each, as two processes would
have), keeps a ``Tally`` of their answers and of every write answered 200, reads every
session back afterwards to count acknowledged writes lost, and reports the figures of a
failover scenario. Used by the Redis Cluster and Redis Sentinel failover tests.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread
import httpx

from asgi_sessions.stores.base import SessionStore
from asgi_sessions.testing.app import build_app
from faults.traffic import RECOVERY_DEADLINE, save

CLIENTS = 32


async def in_thread(step: Callable[[], object]) -> None:
    """Run a blocking step (a server started, killed, or waited for) off the event loop."""
    await anyio.to_thread.run_sync(step)


@dataclasses.dataclass
class Tally:
    """What the clients got back, and which writes were acknowledged."""

    statuses: Counter[int] = dataclasses.field(default_factory=Counter)
    escaped: list[str] = dataclasses.field(default_factory=list)
    """Errors that escaped the app: a server would drop the connection."""
    acknowledged: list[dict[str, str]] = dataclasses.field(
        default_factory=lambda: [{} for _ in range(CLIENTS)]
    )
    last_refused: float = 0.0
    """perf_counter() of the last answer that was not a 200."""

    @property
    def answers(self) -> int:
        return sum(self.statuses.values()) + len(self.escaped)


class Load:
    """CLIENTS clients writing to their own sessions, spread over the apps of ``stores``."""

    def __init__(self, stores: list[SessionStore]) -> None:
        transports = [httpx.ASGITransport(build_app(store)) for store in stores]
        self.clients = [
            httpx.AsyncClient(transport=transports[n % len(stores)], base_url="http://t")
            for n in range(CLIENTS)
        ]
        self.workers = len(stores)
        self.tally = Tally()
        self.running = True

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()

    async def login(self) -> None:
        for index, client in enumerate(self.clients):
            assert (await client.post(f"/login/user{index}")).status_code == 200

    async def write(self, index: int, number: int) -> int:
        """One write of client ``index``; counted, and remembered if acknowledged."""
        key, value = f"k{number}", f"v{index}-{number}"
        try:
            response = await self.clients[index].post(f"/set/{key}", json=value)
        except Exception as exc:  # the app let it escape: a server drops the connection
            self.tally.escaped.append(f"{type(exc).__name__}: {exc}")
            self.tally.last_refused = time.perf_counter()
            return 0
        self.tally.statuses[response.status_code] += 1
        if response.status_code == 200:
            self.tally.acknowledged[index][key] = value
        else:
            self.tally.last_refused = time.perf_counter()
            if response.status_code == 503:
                assert response.headers["retry-after"]
                assert "set-cookie" not in response.headers
        return response.status_code

    async def keep_writing(self, index: int) -> None:
        number = 0
        while self.running:
            await self.write(index, number)
            number += 1
            await anyio.sleep(0.005)

    async def answered(self, more: int) -> None:
        """Wait until the clients have had ``more`` answers since the call."""
        target = self.tally.answers + more
        with anyio.fail_after(RECOVERY_DEADLINE):
            while self.tally.answers < target:
                await anyio.sleep(0.01)

    async def served_again(self) -> None:
        """Wait until every client has a write answered 200."""
        with anyio.fail_after(RECOVERY_DEADLINE):
            for index in range(CLIENTS):
                number = 1_000_000
                while await self.write(index, number) != 200:
                    number += 1
                    await anyio.sleep(0.05)

    async def lost(self) -> int:
        """Read every session back; count acknowledged writes missing or changed."""
        lost = 0
        for client, acknowledged in zip(self.clients, self.tally.acknowledged, strict=True):
            response = await client.get("/read")
            assert response.status_code == 200
            data = response.json()["data"]
            lost += sum(data.get(key) != value for key, value in acknowledged.items())
        return lost

    def report(
        self, scenario: str, killed_at: float, failover_seconds: float, lost: int
    ) -> dict[str, object]:
        """Print a failover scenario's figures and keep them in the artifact."""
        tally = self.tally
        figures: dict[str, object] = {
            "clients": CLIENTS,
            "workers": self.workers,
            "answers": tally.answers,
            "200": tally.statuses[200],
            "503": tally.statuses[503],
            "500": tally.statuses[500],
            "escaped": len(tally.escaped),
            "failover_seconds": round(failover_seconds, 2),
            "refused_until_seconds_after_kill": round(tally.last_refused - killed_at, 2),
            "acknowledged_writes_lost": lost,
        }
        print(f"\n[failover] {scenario}: {figures} {Counter(tally.escaped).most_common(3)}")
        save("failover", scenario, figures)
        return figures


@dataclasses.dataclass
class Failover:
    """How one deployment loses its primary: the server to kill, its replica, how to
    wait for the takeover, how to start the killed server again, how to wait for health.
    Each step blocks, so the driver runs it off the event loop."""

    victim: Any
    replica: Any
    wait_until_failed_over: Callable[[], object]
    restart_victim: Callable[[], object]
    wait_until_healthy: Callable[[], object]


async def kill_under_load(
    stores: list[SessionStore], scenario: str, failover: Failover, *, cut_off_replica: bool
) -> tuple[Tally, dict[str, object]]:
    """Kill the primary while every client writes; wait for the takeover, start the
    killed server again as a replica, wait until every client is served, then count
    acknowledged writes lost. With ``cut_off_replica`` the replica is first frozen and
    cut off, and writes go on for a while before the kill."""
    victim, replica = failover.victim, failover.replica
    load = Load(stores)
    try:
        await load.login()
        async with anyio.create_task_group() as group:
            for index in range(CLIENTS):
                group.start_soon(load.keep_writing, index)
            await load.answered(more=3 * CLIENTS)
            if cut_off_replica:
                replica.pause()
                await in_thread(lambda: victim.cli("CLIENT", "KILL", "TYPE", "replica"))
                await load.answered(more=3 * CLIENTS)
            killed_at = time.perf_counter()
            await in_thread(victim.kill)
            replica.resume()
            await in_thread(failover.wait_until_failed_over)
            failover_seconds = time.perf_counter() - killed_at
            await in_thread(failover.restart_victim)
            await in_thread(failover.wait_until_healthy)
            await load.served_again()
            load.running = False
        lost = await load.lost()
    finally:
        await load.aclose()
    return load.tally, load.report(scenario, killed_at, failover_seconds, lost)


def check_outage(tally: Tally, figures: dict[str, object], wait_for_replicas: int) -> None:
    """The outage was 503s, never a 500 or an error out of the app; waiting for a
    replica lost no acknowledged write."""
    assert tally.escaped == [], "nothing escapes the app"
    assert set(tally.statuses) <= {200, 503}, "the outage is 503s, never a 500"
    if wait_for_replicas:
        assert figures["acknowledged_writes_lost"] == 0, "a write no replica had was a 503"

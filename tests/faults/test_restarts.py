"""The store's server goes away and comes back: 503 meanwhile, then service resumes by
itself, without restarting the app.

Each test starts a server of its own on a free loopback port (``faults.servers``), so it
can stop it without disturbing anyone else. Redis runs without persistence, so its
sessions are gone after the restart (expected: the point is recovery); PostgreSQL keeps
them.
"""

from __future__ import annotations

from collections.abc import Iterator

import anyio.to_thread
import httpx
import pytest

from asgi_sessions.testing.clock import FrozenClock
from faults.servers import PostgresServer, RedisServer, running_postgres, running_redis
from faults.stores import TIMEOUT, with_options
from faults.traffic import Figures, Traffic, outage

pytestmark = pytest.mark.anyio

TIMEOUTS = {"connect_timeout": TIMEOUT}


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


@pytest.fixture
def postgres_server() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server


async def new_login_works(traffic: Traffic) -> None:
    """A client never seen before can log in and is recognised on its next request."""
    async with httpx.AsyncClient(transport=traffic.transport, base_url="http://t") as newcomer:
        assert (await newcomer.post("/login/newcomer")).status_code == 200
        assert (await newcomer.get("/read")).json()["user_id"] == "newcomer"


async def test_redis_restart_is_503_meanwhile_and_service_resumes_by_itself(
    redis_server: RedisServer, clock: FrozenClock
) -> None:
    figures = Figures("redis: server killed and restarted", note="no persistence: keys lost")
    await outage(
        with_options(redis_server.url, socket_timeout=TIMEOUT, **TIMEOUTS),
        clock,
        figures,
        fault=lambda: anyio.to_thread.run_sync(redis_server.kill),
        heal=lambda: anyio.to_thread.run_sync(redis_server.start),
        after=new_login_works,
    )
    assert figures.unavailable > 0
    assert figures.errors == 0


async def test_postgres_restart_is_503_meanwhile_and_sessions_survive(
    postgres_server: PostgresServer, clock: FrozenClock
) -> None:
    figures = Figures("postgres: server stopped (fast) and restarted")
    await outage(
        with_options(postgres_server.dsn, command_timeout=TIMEOUT, **TIMEOUTS),
        clock,
        figures,
        fault=lambda: anyio.to_thread.run_sync(postgres_server.stop),
        heal=lambda: anyio.to_thread.run_sync(postgres_server.start),
        after=new_login_works,
    )
    assert figures.unavailable > 0
    assert figures.errors == 0
    assert figures.lost == 0

"""A slow or silent store: 503 within about the timeout, never a hang, never a 500.

The store talks to its real server through a ``FaultProxy`` with half-second timeouts.
While the proxy delays or holds every byte, requests that need the session are answered
503 with Retry-After in about a timeout; requests that never touch it are served. Once
the network is healthy again the app serves sessions by itself, and every write it
acknowledged with a 200 is still there.
"""

from __future__ import annotations

import pytest

from asgi_sessions.testing.clock import FrozenClock
from faults.proxy import FaultProxy, Mode
from faults.stores import TIMEOUT, with_options
from faults.traffic import CLIENTS, Figures, outage

pytestmark = pytest.mark.anyio
pytest_plugins = ["faults.stores"]

ANSWER_WITHIN = 6 * TIMEOUT
"""Bound on a request while the store is down: a few timeouts (connect, command, the
cancelled command's clean-up), far from a hang. Not a speed target."""

SLOW_BUT_IN_TIME = TIMEOUT / 10
"""A delay per chunk, each way, that a request fits within its deadline however its
calls land: a read and a write, plus a statement's first preparation on a pooled
connection (PostgreSQL), are up to three round trips of twice this. At a fifth of the
timeout, three round trips overran the deadline, and whether a connection had the
statement prepared depended on which one the pool lent."""


@pytest.mark.parametrize(
    ("mode", "delay", "served"),
    [
        ("delay", SLOW_BUT_IN_TIME, True),
        ("delay", 4 * TIMEOUT, False),
        ("hold", 0.0, False),
    ],
    ids=["slow-within-timeout", "slower-than-timeout", "silent"],
)
async def test_slow_store_answers_503_in_time_and_loses_no_acknowledged_write(
    networked: str,
    proxy: FaultProxy,
    proxied_url: str,
    clock: FrozenClock,
    mode: Mode,
    delay: float,
    served: bool,
) -> None:
    scenario = f"{networked}: {mode} {int(delay * 1000)} ms" if delay else f"{networked}: {mode}"
    figures = Figures(scenario)
    url = proxied_url
    if networked == "postgres":  # a connection per client, opened before the fault
        url = with_options(url, min_size=CLIENTS)
    await outage(
        url,
        clock,
        figures,
        fault=lambda: proxy.set(mode, delay=delay),
        heal=lambda: proxy.set("pass"),
    )
    assert figures.errors == 0
    assert figures.lost == 0
    if served:
        assert figures.unavailable == 0, "a store slower than usual but within its timeout"
    else:
        assert figures.unavailable > 0
        assert figures.slowest_seconds < ANSWER_WITHIN, "a 503 comes in about a timeout"

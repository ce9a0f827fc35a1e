"""A client that goes away mid-request: the call it cancels leaves the pool healthy.

The proxy holds a command on the wire while the request (or store call) waiting for it is
cancelled; then the held bytes go on, so a late answer reaches a connection the pool may
lend again. That is how redis-py's CVE-2023-28858 handed one caller another caller's
reply. Afterwards many interleaved reads of distinct sessions must each get their own.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Awaitable, Callable
from functools import partial

import anyio
import httpx
import pytest

from asgi_sessions import create_session
from asgi_sessions.stores import create_store
from asgi_sessions.stores.base import SessionRecord, SessionStore
from asgi_sessions.testing.app import build_app
from asgi_sessions.testing.clock import FrozenClock
from asgi_sessions.testing.store_suite import new_record
from asgi_sessions.tokens import key_for
from faults.proxy import FaultProxy

pytestmark = pytest.mark.anyio
pytest_plugins = ["faults.stores"]

SESSIONS = 20
ROUNDS = 5
SETTLE_WITHIN = 5.0
"""Seconds a cancelled call may take to give its connection back."""


async def held(proxy: FaultProxy) -> None:
    """Wait until the proxy is holding a command back."""
    with anyio.fail_after(5):
        await proxy.held.wait()


async def read_as(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get("/read", headers={"cookie": f"session={token}"})


async def slow_write(client: httpx.AsyncClient, token: str, value: int) -> None:
    await client.post("/held/write", json=value, headers={"cookie": f"session={token}"})


async def each_gets_its_own(client: httpx.AsyncClient, issued: list[str]) -> list[str]:
    """Read every session three times, shuffled and all at once; list any mix-ups."""
    wrong: list[str] = []
    order = [n for n in range(len(issued)) for _ in range(3)]
    random.shuffle(order)

    async def check(n: int) -> None:
        response = await read_as(client, issued[n])
        if response.status_code != 200 or response.json()["data"].get("n") != n:
            wrong.append(f"session {n} got {response.status_code} {response.text}")

    async with anyio.create_task_group() as group:
        for n in order:
            group.start_soon(check, n)
    return wrong


async def test_cancelled_requests_leave_the_pool_healthy_and_sessions_consistent(
    networked: str, proxy: FaultProxy, proxied_url: str, clock: FrozenClock
) -> None:
    store = create_store(proxied_url, clock=clock)
    try:
        issued = [await create_session(store, {"n": n}) for n in range(SESSIONS)]
        for number in range(ROUNDS):
            app = build_app(store)  # a fresh gate for /held/write
            writer, readers = issued[number], issued[number + 1 : number + 4]
            transport = httpx.ASGITransport(app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                with anyio.fail_after(SETTLE_WITHIN):
                    async with anyio.create_task_group() as group:
                        group.start_soon(slow_write, client, writer, number)
                        await app.state.reached.wait()  # its read is done; its save is next
                        proxy.set("hold")
                        for token in readers:
                            group.start_soon(read_as, client, token)
                        app.state.gate.set()
                        await held(proxy)
                        group.cancel_scope.cancel()
                proxy.set("pass")
                assert await each_gets_its_own(client, issued) == []
            record = await store.read(key_for(writer))
            assert record is not None
            assert json.loads(record.data) in ({"n": number}, {"n": number, "held": number})
        assert await store.count() == SESSIONS
    finally:
        await store.close()


async def test_a_store_call_cancelled_mid_command_ends_cancelled_and_writes_whole(
    networked: str, proxy: FaultProxy, proxied_url: str, clock: FrozenClock
) -> None:
    store = create_store(proxied_url, clock=clock)
    records = [dataclasses.replace(new_record(clock), data=b"version 1") for _ in range(6)]
    seen: list[BaseException] = []

    async def cancelled(call: Callable[[], Awaitable[object]]) -> None:
        try:
            await call()
        except BaseException as exc:
            seen.append(exc)
            raise

    try:
        for record in records:
            await store.create(record)
        for _ in range(ROUNDS):
            current = [await store.read(r.key) for r in records]
            proxy.set("hold")
            with anyio.fail_after(SETTLE_WITHIN):
                async with anyio.create_task_group() as group:
                    for loaded in current[:3]:
                        group.start_soon(cancelled, partial(bump, store, loaded))
                    for loaded in current[3:]:
                        assert loaded is not None
                        group.start_soon(cancelled, partial(store.read, loaded.key))
                    await held(proxy)
                    group.cancel_scope.cancel()
            proxy.set("pass")
            for record in records:
                stored = await store.read(record.key)
                assert stored is not None
                assert stored.data == b"version %d" % stored.version, "half-written update"
    finally:
        await store.close()
    cancelled_class = anyio.get_cancelled_exc_class()
    assert [type(exc) for exc in seen if not isinstance(exc, cancelled_class)] == []


async def bump(store: SessionStore, record: SessionRecord | None) -> bool:
    """Update ``record`` to the next version, its data naming that version."""
    assert record is not None
    changed = dataclasses.replace(record, data=b"version %d" % (record.version + 1))
    return await store.update(changed, expected_version=record.version)

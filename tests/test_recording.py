"""RecordingStore: one entry per call of the contract, and faults injected by name."""

from __future__ import annotations

import dataclasses

import anyio
import pytest

from asgi_sessions.exceptions import StoreUnavailable
from asgi_sessions.stores import MemoryStore
from asgi_sessions.stores.base import CONTRACT
from asgi_sessions.testing import FrozenClock, RecordingStore
from asgi_sessions.testing.store_suite import contract_call, new_record

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("name", CONTRACT)
async def test_each_call_of_the_contract_is_recorded_once_by_its_name(
    clock: FrozenClock, name: str
) -> None:
    store = RecordingStore(MemoryStore(clock=clock))
    await contract_call(store, name, new_record(clock, user_id="ada"))()
    assert store.calls == [name]


@pytest.mark.parametrize("name", CONTRACT)
async def test_a_failing_call_raises_store_unavailable_and_heals(
    clock: FrozenClock, name: str
) -> None:
    store = RecordingStore(MemoryStore(clock=clock))
    store.fail(name)
    call = contract_call(store, name, new_record(clock, user_id="ada"))
    with pytest.raises(StoreUnavailable, match=name):
        await call()
    store.heal()
    await call()
    assert store.calls == [name, name]


def test_failing_a_name_outside_the_contract_is_refused(clock: FrozenClock) -> None:
    store = RecordingStore(MemoryStore(clock=clock))
    with pytest.raises(ValueError, match="destory"):
        store.fail("destory")
    store.fail()
    assert store.failing == frozenset(CONTRACT)


@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
async def test_a_held_call_waits_before_or_after_the_store_until_released(
    clock: FrozenClock, after: bool
) -> None:
    store = RecordingStore(MemoryStore(clock=clock))
    record = new_record(clock, user_id="ada")
    held = store.hold("create", after=after)
    async with anyio.create_task_group() as group:
        group.start_soon(store.create, record)
        with anyio.fail_after(5):  # not a timing check: a hold that never held would hang
            await held.reached.wait()
        assert (await store.store.read(record.key) is not None) is after
        held.release()
    assert await store.read(record.key) == record
    await store.create(dataclasses.replace(record, key="b" * 64))  # only the next call waits
    assert store.calls == ["create", "read", "create"]


async def test_a_caller_cancelled_while_held_never_reaches_the_store(clock: FrozenClock) -> None:
    store = RecordingStore(MemoryStore(clock=clock))
    record = new_record(clock)
    held = store.hold("create")
    async with anyio.create_task_group() as group:
        group.start_soon(store.create, record)
        with anyio.fail_after(5):
            await held.reached.wait()
        group.cancel_scope.cancel()
    assert await store.read(record.key) is None


def test_holding_a_streamed_call_or_a_name_outside_the_contract_is_refused(
    clock: FrozenClock,
) -> None:
    store = RecordingStore(MemoryStore(clock=clock))
    for name in ("all", "delete_expired", "destory"):
        with pytest.raises(ValueError, match=name):
            store.hold(name)

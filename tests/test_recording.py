"""RecordingStore: one entry per call of the contract, and faults injected by name."""

from __future__ import annotations

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

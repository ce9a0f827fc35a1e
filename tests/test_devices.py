"""What a session records of its client, and the user's view of their devices."""

from __future__ import annotations

import dataclasses

import pytest

from asgi_sessions.devices import (
    MAX_USER_AGENT_LENGTH,
    DeviceTracking,
    client_address,
    device_id,
    list_devices,
    revoke_device,
    user_agent,
)
from asgi_sessions.stores.memory import MemoryStore
from asgi_sessions.testing import FrozenClock
from asgi_sessions.testing.store_suite import new_record

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("host", "mode", "kept"),
    [
        ("203.0.113.77", "full", "203.0.113.77"),
        ("203.0.113.77", "truncated", "203.0.113.0"),
        ("2001:db8:85a3:8d3:1319:8a2e:370:7348", "full", "2001:db8:85a3:8d3:1319:8a2e:370:7348"),
        ("2001:db8:85a3:8d3:1319:8a2e:370:7348", "truncated", "2001:db8:85a3::"),
        ("::ffff:203.0.113.77", "truncated", "203.0.113.0"),
        ("203.0.113.77", "none", None),
        ("testclient", "full", "testclient"),
        ("testclient", "truncated", None),
    ],
)
def test_the_client_address_is_kept_whole_truncated_or_not_at_all(
    host: str, mode: str, kept: str | None
) -> None:
    assert client_address((host, 50000), mode) == kept  # type: ignore[arg-type]


def test_no_client_in_the_scope_records_no_address() -> None:
    assert client_address(None, "full") is None


def test_an_unknown_address_mode_is_refused_naming_the_choices() -> None:
    with pytest.raises(ValueError, match="'full', 'truncated'"):
        DeviceTracking(enabled=True, address="anonymised")  # type: ignore[arg-type]


def test_the_user_agent_is_cleaned_and_cut() -> None:
    assert user_agent([(b"User-Agent", b"curl/8.5.0\x00\r\nX-Evil: 1")]) == "curl/8.5.0   X-Evil: 1"
    long = user_agent([(b"user-agent", b"M" * 5000)])
    assert long == "M" * MAX_USER_AGENT_LENGTH
    assert user_agent([(b"user-agent", "é".encode("latin-1"))]) == "é"
    assert user_agent([(b"accept", b"*/*")]) is None
    assert user_agent([(b"user-agent", b"\x01\x02")]) is None


def test_a_device_id_is_stable_and_is_neither_the_key_nor_part_of_it() -> None:
    key = "a" * 64
    assert device_id(key) == device_id(key)
    assert device_id(key) not in key and len(device_id(key)) == 24
    assert device_id("b" * 64) != device_id(key)


async def test_revoking_a_device_ends_only_a_session_of_that_user() -> None:
    clock = FrozenClock()
    store = MemoryStore(clock=clock)
    mine, other, theirs = (new_record(clock, user_id=u) for u in ("ada", "ada", "bob"))
    for record in (mine, other, theirs):
        await store.create(record)
    devices = await list_devices(store, "ada", mine.key)
    ordered = sorted((mine, other), key=lambda r: r.key)  # created together: by key
    assert [(d.id, d.current) for d in devices] == [(device_id(r.key), r is mine) for r in ordered]
    assert await revoke_device(store, "ada", device_id(theirs.key)) is None
    assert await store.read(theirs.key) is not None
    assert await revoke_device(store, "ada", device_id(other.key)) == other.key
    assert await store.read(other.key) is None
    assert await revoke_device(store, "ada", device_id(other.key)) is None


async def test_a_device_that_changed_since_it_was_listed_is_still_revoked() -> None:
    clock = FrozenClock()
    store = MemoryStore(clock=clock)
    record = new_record(clock, user_id="ada")
    await store.create(record)
    busy = dataclasses.replace(record, data=b"{}")
    assert await store.update(busy, expected_version=1)
    assert await revoke_device(store, "ada", device_id(record.key)) == record.key
    assert await store.read(record.key) is None

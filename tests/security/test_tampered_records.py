"""A record whose data was tampered with in the store is no session: 200, a fresh
anonymous session, an error in the log, never a 500, on every store."""

from __future__ import annotations

import dataclasses
import logging

import httpx
import pytest

from asgi_sessions import tokens
from asgi_sessions.stores import create_store
from asgi_sessions.testing.app import build_app
from asgi_sessions.testing.clock import FrozenClock

pytestmark = pytest.mark.anyio
pytest_plugins = ["faults.stores"]

TAMPERED = {
    "not JSON": b"\xff{not json",
    "truncated JSON": b'{"cart": [',
    "a JSON list": b"[1, 2]",
    "a JSON string": b'"admin"',
    "empty": b"",
    "NUL bytes": b"\x00" * 16,
    "invalid UTF-8 inside JSON": b'{"user": "\xff\xfe"}',
    "nested too deep to decode": b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "an expiry that is no date": b'{"_session_expiry": "not a date"}',
    "an expiry without a time zone": b'{"_session_expiry": "2030-01-02T00:00:00"}',
    "an expiry of another type": b'{"_session_expiry": [3600]}',
    "an expiry too far to reckon": b'{"_session_expiry": 1e300}',
    "an infinite expiry": b'{"_session_expiry": Infinity}',
}


@pytest.mark.parametrize("data", TAMPERED.values(), ids=TAMPERED.keys())
async def test_tampered_record_is_no_session_and_is_logged_as_an_error(
    store_url: str, clock: FrozenClock, caplog: pytest.LogCaptureFixture, data: bytes
) -> None:
    caplog.set_level(logging.ERROR, logger="asgi_sessions")
    store = create_store(store_url, clock=clock)
    transport = httpx.ASGITransport(build_app(store))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.post("/set/cart", json=["apple"])).status_code == 200
            token = client.cookies["session"]
            record = await store.read(tokens.key_for(token))
            assert record is not None
            tampered = dataclasses.replace(record, data=data)
            assert await store.update(tampered, expected_version=record.version)

            response = await client.get("/read")
            assert response.status_code == 200
            assert response.json() == {"data": {}, "user_id": None}

            response = await client.post("/set/cart", json=["pear"])
            assert response.status_code == 200
            assert client.cookies["session"] != token, "a fresh session, under a new ID"
            assert (await client.get("/read")).json()["data"] == {"cart": ["pear"]}
    finally:
        await store.close()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2  # once per request that met the tampered record
    for error in errors:
        assert error.name == "asgi_sessions"
        assert tokens.key_for(token)[:16] in error.getMessage()
        assert token not in error.getMessage()

"""Sealed session data: no plaintext anywhere at rest, rotation without logging anyone
out, and a record that does not open is no session, never a 500."""

from __future__ import annotations

import dataclasses
import logging

import httpx
import pytest

from asgi_sessions import create_session, tokens
from asgi_sessions.exceptions import CorruptSession
from asgi_sessions.sealing import KeyRing, Sealer, TokenBound, generate_key
from asgi_sessions.stores import create_store
from asgi_sessions.testing.app import build_app
from asgi_sessions.testing.clock import FrozenClock
from security.test_token_secrecy import everything_stored

pytestmark = pytest.mark.anyio
pytest_plugins = ["faults.stores"]

MARKER = "oauth-refresh-token-7f3a9c"
OLD, NEW = generate_key(), generate_key()


def client_of(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t")  # type: ignore[arg-type]


@pytest.mark.parametrize("sealer", [KeyRing({"2026-12": NEW}), TokenBound()], ids=["ring", "token"])
async def test_no_plaintext_of_session_data_is_anywhere_at_rest(
    store_url: str, clock: FrozenClock, sealer: Sealer
) -> None:
    store = create_store(store_url, clock=clock)
    try:
        app = build_app(store, encryption=sealer)
        async with client_of(app) as client:
            assert (await client.post("/set/oauth", json=MARKER)).status_code == 200
            assert (await client.post("/login/ann")).status_code == 200
            assert (await client.post("/set/more", json=MARKER * 3)).status_code == 200
            assert (await client.get("/read")).json()["data"]["oauth"] == MARKER
            token = client.cookies["session"]
        at_rest = await everything_stored(store, store_url)
        for form in (MARKER.encode(), MARKER.encode().hex().encode(), b"oauth"):
            assert form not in at_rest
        [record] = await store.user_sessions("ann")  # the user index stays readable
        assert record.key == tokens.key_for(token)
    finally:
        await store.close()


async def test_a_key_ring_seals_with_its_first_key_and_opens_with_any(clock: FrozenClock) -> None:
    store = create_store("memory://", clock=clock)
    old_app = build_app(store, encryption=KeyRing({"2026-06": OLD}))
    async with client_of(old_app) as client:
        await client.post("/set/cart", json=["apple"])
        token = client.cookies["session"]
    rotated = KeyRing({"2026-12": NEW, "2026-06": OLD})
    new_app = build_app(store, encryption=rotated)
    async with client_of(new_app) as client:
        client.cookies.set("session", token)
        assert (await client.get("/read")).json()["data"] == {"cart": ["apple"]}
        await client.post("/set/cart", json=["apple", "pear"])
    record = await store.read(tokens.key_for(token))
    assert record is not None and rotated.is_current(record.data)


@pytest.mark.parametrize(
    "reading", [KeyRing({"other": NEW}), KeyRing({"2026-06": NEW}), TokenBound()],
    ids=["key-not-in-ring", "wrong-key-same-id", "other-mode"],
)
async def test_a_record_that_does_not_open_is_no_session_and_is_logged(
    clock: FrozenClock, caplog: pytest.LogCaptureFixture, reading: Sealer
) -> None:
    store = create_store("memory://", clock=clock)
    async with client_of(build_app(store, encryption=KeyRing({"2026-06": OLD}))) as client:
        await client.post("/set/cart", json=["apple"])
        token = client.cookies["session"]
    caplog.set_level(logging.ERROR, logger="asgi_sessions")
    async with client_of(build_app(store, encryption=reading)) as client:
        client.cookies.set("session", token)
        response = await client.get("/read")
    assert response.status_code == 200
    assert response.json() == {"data": {}, "user_id": None}
    assert "is unreadable, ignored" in caplog.text
    assert token not in caplog.text


async def test_a_ciphertext_moved_into_another_record_does_not_open(clock: FrozenClock) -> None:
    store = create_store("memory://", clock=clock)
    app = build_app(store, encryption=KeyRing({"k": NEW}))
    tokens_issued = []
    for user in ("ann", "eve"):
        tokens_issued.append(await create_session(app, {"who": user}, user_id=user))
    anns, eves = [await store.read(tokens.key_for(t)) for t in tokens_issued]
    assert anns is not None and eves is not None
    assert await store.update(dataclasses.replace(eves, data=anns.data), expected_version=1)
    async with client_of(app) as client:
        client.cookies.set("session", tokens_issued[1])
        assert (await client.get("/read")).json()["data"] == {}


def test_token_bound_data_needs_the_token() -> None:
    sealed = TokenBound().seal(b"{}", "k" * 64, "t" * 43)
    assert TokenBound().open(sealed, "k" * 64, "t" * 43) == b"{}"
    for token in (None, "u" * 43):
        with pytest.raises(CorruptSession):
            TokenBound().open(sealed, "k" * 64, token)


@pytest.mark.parametrize(
    ("keys", "message"),
    [({}, "at least one key"), ({"k": b"short"}, "must be 32 bytes"), ({"": NEW}, "1 to 255")],
)
def test_a_key_ring_refuses_unusable_keys(keys: dict[str, str | bytes], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        KeyRing(keys)

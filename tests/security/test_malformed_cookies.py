"""Malformed session cookies cost no store round trip and never a 500, on every store.

Requests are sent as raw ASGI messages, so the Cookie header carries exactly the bytes
under test (NUL, control and non-UTF-8 bytes that an HTTP client would not encode).
A ``RecordingStore`` around the real store shows that not one call reached it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from asgi_sessions import create_session
from asgi_sessions.stores import create_store
from asgi_sessions.testing import RecordingStore
from asgi_sessions.testing.app import build_app
from asgi_sessions.testing.clock import FrozenClock
from security.asgi import request

pytestmark = pytest.mark.anyio
pytest_plugins = ["faults.stores"]

SHAPE = b"A" * 43
"""Letters of a well-formed token: whatever surrounds them decides."""

MALFORMED: dict[str, list[bytes]] = {
    "too short": [b"session=" + b"A" * 21],
    "too long": [b"session=" + b"A" * 257],
    "8 KB value": [b"session=" + b"A" * 8192],
    "8 KB header of many pairs": [b"; ".join(b"session=x%d" % n for n in range(1000))],
    "standard base64 alphabet": [b"session=" + b"A" * 41 + b"+/"],
    "padding": [b"session=" + SHAPE + b"="],
    "percent-encoded": [b"session=" + b"%41" * 22],
    "dot and comma": [b"session=" + b"A" * 21 + b".," + b"A" * 21],
    "NUL inside": [b"session=" + b"A" * 21 + b"\x00" + b"A" * 22],
    "NUL before": [b"session=\x00" + SHAPE],
    "NUL after": [b"session=" + SHAPE + b"\x00"],
    **{
        f"control byte {byte:#04x} around": [b"session=" + bytes([byte]) + SHAPE + bytes([byte])]
        for byte in [*range(0x01, 0x09), *range(0x0A, 0x20), 0x7F]
    },
    "latin-1 spaces around (NBSP, NEL)": [b"session=\xa0" + SHAPE + b"\x85"],
    "non-UTF-8 bytes": [b"session=\xff\xfe" + b"A" * 41],
    "UTF-8 letters": [b"session=" + "é".encode() * 22],
    "latin-1 letters": [b"session=" + "é".encode("latin-1") * 43],
    "unbalanced quote": [b'session="' + SHAPE],
    "doubled quotes": [b'session=""' + SHAPE + b'""'],
    "no value": [b"session=", b"session", b"=session", b";;; ;"],
    "name differs in case": [b"Session=" + SHAPE, b"SESSION=" + SHAPE],
    "space inside the name": [b"ses sion=" + SHAPE, b"session =" + SHAPE],
    "two Cookie headers, both malformed": [b"session=short", b"session=" + b"*" * 43],
    "empty header": [b""],
}


@pytest.fixture
async def store(store_url: str, clock: FrozenClock) -> AsyncIterator[RecordingStore]:
    recording = RecordingStore(create_store(store_url, clock=clock))
    yield recording
    await recording.close()


@pytest.mark.parametrize("values", MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_cookie_costs_no_store_call_and_no_500(
    store: RecordingStore, values: list[bytes]
) -> None:
    app = build_app(store)
    for path in ("/read", "/untouched"):
        answer = await request(app, [(b"cookie", value) for value in values], path=path)
        assert answer.status == 200, answer.body
        assert answer.header(b"set-cookie") == []
    assert store.calls == []


async def test_garbage_in_other_cookies_does_not_hide_the_session(store: RecordingStore) -> None:
    token = await create_session(store, {"who": "me"})
    store.reset()
    garbage = b'a=\xff\x00\x1f; b="; =; c; session=short; d=' + b"x" * 8192
    answer = await request(
        build_app(store), [(b"cookie", garbage + b"; session=" + token.encode())]
    )
    assert answer.status == 200
    assert b'"who":"me"' in answer.body
    assert store.calls == ["read"]

"""Property tests: the cookie parser on arbitrary bytes, and any JSON value through a
save and a load on every store.

The round trip keeps one store (one namespace) per test, not per example, and a modest
number of examples per store, since each example is two requests to a real server.
"""

from __future__ import annotations

import json
import string
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asgi_sessions import tokens
from asgi_sessions.cookies import CookiePolicy
from asgi_sessions.stores import create_store
from asgi_sessions.stores.base import SessionStore
from asgi_sessions.testing.app import build_app
from asgi_sessions.testing.clock import FrozenClock

pytest_plugins = ["faults.stores"]

TOKEN_ALPHABET = string.ascii_letters + string.digits + "-_"
PIECES = [b"session", b"=", b";", b" ", b"\t", b'"', b"\x00", b"\x1f", b"\x7f", b"\xa0", b"\xff"]

cookie_bytes = st.lists(
    st.sampled_from([*PIECES, b"A" * 22, b"-_", b"A" * 250]) | st.binary(max_size=8),
    max_size=24,
).map(b"".join)
"""Header values built from the bytes that matter to a cookie parser, plus any bytes."""

_blank = st.sampled_from([b"", b" ", b"\t", b" \t ", b"\x0b"])
_cookie_pair = st.tuples(
    _blank,
    st.sampled_from([b"session", b"session ", b"Session", b"sessio", b"x"]),
    st.sampled_from([b"=", b"", b"=="]),
    _blank,
    st.sampled_from([b"", b'"']),
    st.sampled_from([b"A" * 22, b"A" * 21, b"-_" * 128, b"A" * 257, b"A" * 22 + b"\x00", b""])
    | st.binary(max_size=30),
    st.sampled_from([b"", b'"']),
    _blank,
).map(b"".join)
cookie_syntax = st.lists(_cookie_pair, max_size=4).map(b";".join)
"""Header values made only of a cookie's syntax, so that many hold a session pair."""

other_cookies = st.lists(
    st.tuples(
        st.text(alphabet=string.ascii_letters, min_size=1, max_size=8).filter(
            lambda name: name != "session"
        ),
        st.binary(max_size=20).filter(lambda value: b";" not in value),
    ),
    max_size=5,
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=25,
)


@settings(max_examples=500)
@given(values=st.lists(cookie_bytes | st.binary(max_size=300), max_size=3))
def test_cookie_parser_never_raises_and_returns_only_well_formed_tokens(
    values: list[bytes],
) -> None:
    token = CookiePolicy().token_from([(b"cookie", value) for value in values])
    if token is not None:
        assert tokens.is_well_formed(token)
        assert any(token.encode() in value for value in values)


def reference_token_from(values: list[bytes], wanted: str = "session") -> str | None:
    """RFC 6265's reading, spelled out: split into pairs, trim spaces and tabs around
    each pair and its value, drop one pair of quotes, keep the first well-formed value."""
    for value in values:
        for pair in value.decode("latin-1").split(";"):
            key, sep, token = pair.strip(" \t").partition("=")
            if sep and key == wanted:
                token = token.strip(" \t")
                if len(token) > 1 and token[0] == token[-1] == '"':
                    token = token[1:-1]
                if tokens.is_well_formed(token):
                    return token
    return None


@settings(max_examples=2000)
@given(values=st.lists(cookie_syntax | cookie_bytes, max_size=3))
def test_cookie_parser_agrees_with_the_spelled_out_reading(values: list[bytes]) -> None:
    assert CookiePolicy().token_from([(b"cookie", v) for v in values]) == (
        reference_token_from(values)
    )


@settings(max_examples=200)
@given(
    token=st.text(alphabet=TOKEN_ALPHABET, min_size=22, max_size=256),
    before=other_cookies,
    after=other_cookies,
    quoted=st.booleans(),
)
def test_a_well_formed_session_cookie_is_found_among_any_others(
    token: str,
    before: list[tuple[str, bytes]],
    after: list[tuple[str, bytes]],
    quoted: bool,
) -> None:
    value = f'"{token}"' if quoted else token
    pairs = [b"%s=%s" % (name.encode(), raw) for name, raw in before]
    pairs += [f"session={value}".encode()]
    pairs += [b"%s=%s" % (name.encode(), raw) for name, raw in after]
    assert CookiePolicy().token_from([(b"cookie", b"; ".join(pairs))]) == token


@pytest.fixture
async def store(store_url: str, clock: FrozenClock) -> AsyncIterator[SessionStore]:
    """One store, one namespace, for every example of the test."""
    async with create_store(store_url, clock=clock) as opened:
        yield opened


@pytest.mark.anyio
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(value=json_values)
async def test_any_json_value_survives_a_save_and_a_load(store: SessionStore, value: Any) -> None:
    body = json.dumps(value)  # not json=value: httpx sends no body for None
    transport = httpx.ASGITransport(build_app(store))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.post("/set/value", content=body)).status_code == 200  # create
        assert (await client.get("/read")).json()["data"] == {"value": value}
        assert (await client.post("/set/again", content=body)).status_code == 200  # update
        assert (await client.get("/read")).json()["data"] == {"value": value, "again": value}

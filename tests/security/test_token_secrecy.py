"""The cookie token never reaches the store or the logs, and an unknown ID looks like a
known one from the store's side: one read, nothing else.

After clients log in, write, replay old cookies and log out through the middleware,
everything the store holds is dumped raw (the SQLite file with its WAL, every Postgres
row cast to text, every Redis key with DUMP and its decoded value, on one server and on
a cluster) and searched for each token, in text, raw bytes and hex. Logs are captured
at DEBUG level, from every logger, for the whole run.
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from asgi_sessions import create_session, tokens
from asgi_sessions.stores import create_store
from asgi_sessions.stores.base import SessionStore
from asgi_sessions.stores.postgres import PostgresStore
from asgi_sessions.stores.redis import RedisStore
from asgi_sessions.stores.sqlite import SQLiteStore
from asgi_sessions.testing import RecordingStore
from asgi_sessions.testing.app import build_app
from asgi_sessions.testing.clock import FrozenClock

pytestmark = pytest.mark.anyio
pytest_plugins = ["faults.stores"]

CLIENTS = 3


def forms(token: str) -> list[bytes]:
    """Ways a token could be written down: as text, as its raw bytes, as their hex."""
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    return [token.encode(), raw, raw.hex().encode(), token.encode().hex().encode()]


def sqlite_files(store: SQLiteStore) -> bytes:
    """The database file and its -wal and -shm companions, byte for byte."""
    path = Path(store.path)
    return b"".join(p.read_bytes() for p in sorted(path.parent.glob(f"{path.name}*")))


async def postgres_rows(store: PostgresStore) -> bytes:
    """Every row of the table cast to text, and the data column's raw bytes."""
    assert store.dsn is not None
    conn = await asyncpg.connect(store.dsn)
    try:
        rows = await conn.fetch(f'SELECT t::text AS row, t.data FROM "{store.table_name}" t')
    finally:
        await conn.close()
    return b"\n".join(row["row"].encode() + bytes(row["data"]) for row in rows)


async def redis_keys(store: RedisStore, url: str) -> bytes:
    """Every key under the store's prefix: its name, DUMP, and its decoded value."""
    parts = urlsplit(url.replace("+cluster", ""))
    plain = urlunsplit(parts._replace(query=""))
    client: Any = RedisCluster.from_url(plain) if "+cluster" in url else Redis.from_url(plain)
    found: list[bytes] = []
    try:
        async for name in client.scan_iter(match=f"{store.prefix}*", count=1000):
            kind = (await client.type(name)).decode()
            found += [name, await client.dump(name) or b""]
            if kind == "hash":
                for field, value in (await client.hgetall(name)).items():
                    found += [field, value]
            elif kind == "zset":
                found += [m for m, _ in await client.zrange(name, 0, -1, withscores=True)]
            elif kind == "string":
                found.append(await client.get(name))
            else:
                raise AssertionError(f"unexpected Redis type {kind} for {name!r}")
    finally:
        await client.aclose()
    assert found, "the dump found the store's keys"
    return b"\n".join(found)


async def everything_stored(store: SessionStore, url: str) -> bytes:
    if isinstance(store, SQLiteStore):
        return sqlite_files(store)
    if isinstance(store, PostgresStore):
        return await postgres_rows(store)
    assert isinstance(store, RedisStore)
    return await redis_keys(store, url)


def logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every captured record: message, arguments and traceback text."""
    return "\n".join(
        f"{r.name} {r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records
    )


async def use_the_app(store: SessionStore) -> set[str]:
    """Browse, log in, write, replay stale cookies and log out; return every token issued."""
    issued: set[str] = set()
    transport = httpx.ASGITransport(build_app(store))
    for n in range(CLIENTS):
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.post("/set/cart", json=["apple"])).status_code == 200
            anonymous = client.cookies["session"]
            assert (await client.post(f"/login/user{n}")).status_code == 200
            logged_in = client.cookies["session"]
            assert (await client.post("/set/theme", json="dark")).status_code == 200
            assert (await client.get("/read")).json()["user_id"] == f"user{n}"
            replay = await client.get("/read", headers={"cookie": f"session={anonymous}"})
            assert replay.json()["data"] == {}, "login destroyed the anonymous session"
            if n == 0:
                assert (await client.post("/logout")).status_code == 200
            issued |= {anonymous, logged_in}
    issued.add(await create_session(store, {"made": "directly"}, user_id="admin"))
    return issued


async def test_no_raw_token_in_the_store_or_the_logs(
    store_url: str, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    store = create_store(store_url, clock=clock)
    try:
        issued = await use_the_app(store)
        dumps = [await everything_stored(store, store_url)]
    finally:
        await store.close()
    dumps.append(await everything_stored(store, store_url))  # SQLite: after the checkpoint
    log = logged(caplog).encode()
    assert len(issued) == 2 * CLIENTS + 1
    # The dumps and the log are real: they hold the digests and the replay warnings.
    assert any(tokens.key_for(token).encode() in dumps[0] for token in issued)
    assert b"names no live session" in log
    for token in issued:
        for form in forms(token):
            assert all(form not in dump for dump in dumps), f"token {form!r} is stored"
            assert form not in log, f"token {form!r} is logged"


async def test_known_and_unknown_ids_cost_exactly_one_read(
    store_url: str, clock: FrozenClock
) -> None:
    store = RecordingStore(create_store(store_url, clock=clock))
    try:
        known = await create_session(store, {"cart": ["apple"]})
        app = build_app(store)
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for token in (known, tokens.generate_token()):
                store.reset()
                response = await client.get("/read", headers={"cookie": f"session={token}"})
                assert response.status_code == 200
                assert "set-cookie" not in response.headers
                assert store.calls == ["read"]
    finally:
        await store.close()


async def test_unknown_ids_are_logged_by_a_hashed_prefix_only(
    store_url: str, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="asgi_sessions")
    store = RecordingStore(create_store(store_url, clock=clock))
    guesses = [tokens.generate_token() for _ in range(50)]
    try:
        transport = httpx.ASGITransport(build_app(store))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for guess in guesses:
                response = await client.get("/read", headers={"cookie": f"session={guess}"})
                assert response.json()["data"] == {}
    finally:
        await store.close()
    assert store.calls == ["read"] * len(guesses) + ["close"]
    misses = [r for r in caplog.records if r.name == "asgi_sessions"]
    # An expired session is a miss too: routine, so DEBUG, never a warning to alert on.
    assert [r.levelno for r in misses] == [logging.DEBUG] * len(guesses)
    for guess, record in zip(guesses, misses, strict=True):
        message = record.getMessage()
        key = tokens.key_for(guess)
        assert key[:16] in message
        assert key not in message, "a prefix of the digest, not the stored key itself"
        assert all(form.decode("latin-1") not in message for form in forms(guess))

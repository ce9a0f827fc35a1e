"""Raw-driver floors: the bare app plus exactly one round trip done by hand.

``/read`` does one ``GET`` (redis-py) or one ``SELECT`` (asyncpg ``fetchrow``,
aiosqlite, asyncmy), keyed by the client's cookie value; ``/write`` does that and one
``SET``/``UPDATE`` more. A session layer cannot do less per request than this, so
"ours / floor" is the share of the driver's speed that the session layer keeps.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from benchmarks import servers
from benchmarks.settings import Env

FLOORS = ("floor-sqlite", "floor-postgres", "floor-redis", "floor-mysql")
DATA = b'{"counter":1}'
TTL_MS = 14 * 24 * 3600 * 1000

Get = Callable[[str], Awaitable[bytes | None]]
Put = Callable[[str, bytes], Awaitable[None]]
Cleanup = Callable[[], Awaitable[Any]]


def _token(request: Request) -> str:
    """The cookie value: clients send exactly ``Cookie: session=<token>``."""
    return request.headers.get("cookie", "")[len("session=") :]


def floor_app(get: Get, put: Put) -> Starlette:
    """The bare app's routes with one raw read (and one raw write) in them."""

    async def untouched(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def read(request: Request) -> Response:
        data = await get(_token(request))
        return PlainTextResponse(str(len(data or b"")))

    async def write(request: Request) -> Response:
        token = _token(request)
        data = await get(token)
        await put(token, data or DATA)
        return PlainTextResponse(str(len(data or b"")))

    routes = [Route("/untouched", untouched), Route("/read", read), Route("/write", write)]
    return Starlette(routes=routes)


@dataclass
class Floor:
    """A floor app, how to give a new client its own row, and how to clean up."""

    name: str
    app: ASGIApp
    insert: Callable[[str], Awaitable[None]]
    cleanups: list[Cleanup] = field(default_factory=list)

    async def new_client(self) -> bytes:
        """Store a row for a fresh token and return the cookie value naming it."""
        token = secrets.token_urlsafe(32)
        await self.insert(token)
        return token.encode()

    async def close(self) -> None:
        for cleanup in self.cleanups:
            await cleanup()


async def build_floor(name: str, env: Env) -> Floor:
    """Open the driver for floor ``name`` in the running event loop."""
    namespace = env.namespace(name)
    if name == "floor-redis":
        return await _redis(env, f"{namespace}:")
    if name == "floor-postgres":
        return await _postgres(env, namespace)
    if name == "floor-sqlite":
        return await _sqlite(env, namespace)
    if name == "floor-mysql":
        return await _mysql(env, namespace)
    raise ValueError(f"unknown floor {name!r}")


async def _redis(env: Env, prefix: str) -> Floor:
    from redis.asyncio import Redis

    assert env.redis_url is not None
    url = env.redis_url
    client = Redis.from_url(url, max_connections=50)

    async def get(token: str) -> bytes | None:
        return cast(bytes | None, await client.get(prefix + token))

    async def put(token: str, data: bytes) -> None:
        await client.set(prefix + token, data, px=TTL_MS)

    async def insert(token: str) -> None:
        await put(token, DATA)

    cleanups: list[Cleanup] = [client.aclose, lambda: servers.clear_prefix(url, prefix)]
    return Floor("floor-redis", floor_app(get, put), insert, cleanups)


async def _skip_reset(connection: Any) -> None:
    """No reset query on release, as PostgresStore does: one round trip per call."""


async def _postgres(env: Env, table: str) -> Floor:
    import asyncpg

    assert env.postgres_dsn is not None
    dsn = env.postgres_dsn
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=10, reset=_skip_reset)
    await pool.execute(f'CREATE TABLE "{table}" (key TEXT PRIMARY KEY, data BYTEA NOT NULL)')
    select = f'SELECT data FROM "{table}" WHERE key = $1'
    update = f'UPDATE "{table}" SET data = $2 WHERE key = $1'

    async def get(token: str) -> bytes | None:
        row = await pool.fetchrow(select, token)
        return None if row is None else bytes(row[0])

    async def put(token: str, data: bytes) -> None:
        await pool.execute(update, token, data)

    async def insert(token: str) -> None:
        await pool.execute(f'INSERT INTO "{table}" VALUES ($1, $2)', token, DATA)

    cleanups: list[Cleanup] = [pool.close, lambda: servers.drop_table(dsn, table)]
    return Floor("floor-postgres", floor_app(get, put), insert, cleanups)


async def _sqlite(env: Env, table: str) -> Floor:
    import aiosqlite

    connection = aiosqlite.connect(os.path.join(env.tmpdir, f"{table}.db"), isolation_level=None)
    connection._thread.daemon = True  # never keep the process alive at exit
    await connection
    await connection.executescript(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
        f'CREATE TABLE "{table}" (key TEXT PRIMARY KEY, data BLOB NOT NULL);'
    )
    select = f'SELECT data FROM "{table}" WHERE key = ?'
    update = f'UPDATE "{table}" SET data = ? WHERE key = ?'

    async def get(token: str) -> bytes | None:
        rows = list(await connection.execute_fetchall(select, (token,)))
        return bytes(rows[0][0]) if rows else None

    async def put(token: str, data: bytes) -> None:
        async with connection.execute(update, (data, token)):
            pass

    async def insert(token: str) -> None:
        async with connection.execute(f'INSERT INTO "{table}" VALUES (?, ?)', (token, DATA)):
            pass

    cleanups: list[Cleanup] = [connection.close]
    return Floor("floor-sqlite", floor_app(get, put), insert, cleanups)


async def _mysql(env: Env, table: str) -> Floor:
    """asyncmy's own pool, autocommit, one statement per round trip."""
    import asyncmy
    from sqlalchemy.engine import make_url

    assert env.mysql_url is not None
    url = make_url(env.mysql_url)
    pool = await asyncmy.create_pool(
        host=url.host or "127.0.0.1",
        port=url.port or 3306,
        user=url.username or "root",
        password=url.password or "",
        db=url.database or "test",
        autocommit=True,
        minsize=1,
        maxsize=10,
    )
    select = f"SELECT data FROM `{table}` WHERE `key` = %s"
    update = f"UPDATE `{table}` SET data = %s WHERE `key` = %s"

    async def run(sql: str, args: tuple[Any, ...]) -> Any:
        async with pool.acquire() as connection, connection.cursor() as cursor:
            await cursor.execute(sql, args)
            return await cursor.fetchone()

    await run(
        f"CREATE TABLE `{table}` (`key` VARBINARY(255) PRIMARY KEY, data LONGBLOB NOT NULL)", ()
    )

    async def get(token: str) -> bytes | None:
        row = await run(select, (token,))
        return None if row is None else bytes(row[0])

    async def put(token: str, data: bytes) -> None:
        await run(update, (data, token))

    async def insert(token: str) -> None:
        await run(f"INSERT INTO `{table}` VALUES (%s, %s)", (token, DATA))

    async def close() -> None:
        pool.close()
        await pool.wait_closed()

    mysql_url = env.mysql_url
    cleanups: list[Cleanup] = [close, lambda: servers.drop_mysql_table(mysql_url, table)]
    return Floor("floor-mysql", floor_app(get, put), insert, cleanups)

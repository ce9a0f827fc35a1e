"""Removing what a run put on the shared PostgreSQL, MariaDB and Redis (only its own
names), and starting the Redis Sentinel deployment a run owns."""

from __future__ import annotations

import shutil

import asyncpg
from redis.asyncio import Redis

from asgi_sessions.testing._redis_servers import running_sentinel
from benchmarks.settings import Env


def can_start_redis() -> bool:
    """Whether this machine can start Redis servers of the run's own (for Sentinel)."""
    return all(shutil.which(binary) for binary in ("redis-server", "redis-cli"))


def sentinel_url(env: Env) -> str:
    """The ``redis+sentinel://`` URL of the run's own primary, replica and three
    Sentinels on loopback, started on first use and stopped when the run ends."""
    if env.redis_sentinel_url is None:
        deployment = env.own_servers.enter_context(running_sentinel())
        env.redis_sentinel_url = deployment.url
    return env.redis_sentinel_url


async def drop_table(dsn: str, table: str) -> None:
    """Drop ``table`` (one this run created) if it exists."""
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        await connection.execute(f'DROP TABLE IF EXISTS "{table}"')
    finally:
        await connection.close()


async def drop_mysql_table(url: str, table: str) -> None:
    """Drop ``table`` (one this run created) on the MySQL/MariaDB server of ``url``."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(f"DROP TABLE IF EXISTS `{table}`"))
    finally:
        await engine.dispose()


async def clear_prefix(url: str, prefix: str) -> int:
    """Delete every key under ``prefix`` (one this run owns), by SCAN and UNLINK."""
    client = Redis.from_url(url)
    removed = 0
    try:
        batch: list[bytes] = []
        async for name in client.scan_iter(match=f"{prefix}*", count=5000):
            batch.append(name)
            if len(batch) >= 5000:
                removed += await client.unlink(*batch)
                batch = []
        if batch:
            removed += await client.unlink(*batch)
    finally:
        await client.aclose()
    return removed

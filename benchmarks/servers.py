"""Removing what a run put on the shared PostgreSQL, MariaDB and Redis: only its own names."""

from __future__ import annotations

import asyncpg
from redis.asyncio import Redis


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

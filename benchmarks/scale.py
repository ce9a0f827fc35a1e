"""Time and peak memory of ``asgi-sessions cleanup`` and ``migrate`` on a million sessions.

    python -m benchmarks.scale [--rows 1000000]

Rows are written in bulk with the drivers (the store creates its schema first);
each command then runs as its own process, measured with ``os.wait4``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

from asgi_sessions import create_store

POSTGRES = os.environ.get("ASGI_SESSIONS_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("ASGI_SESSIONS_REDIS_URL", "redis://127.0.0.1:6379/0")
HOUR_US = 3_600_000_000


def now_us() -> int:
    return time.time_ns() // 1000


async def make_schema(url: str) -> None:
    async with create_store(url) as store:
        await store.count()


def seed_sqlite(path: Path, rows: int, *, expired: bool) -> None:
    expires = now_us() + (-HOUR_US if expired else HOUR_US)
    with sqlite3.connect(path) as db:
        db.execute(
            "WITH RECURSIVE n(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM n"
            " WHERE value < ?) INSERT INTO sessions (key, data, user_id, created_at, expires_at,"
            " version) SELECT printf('%064x', value),"
            " CAST('{\"n\":1}' AS BLOB), 'user' || (value % 1000), ?, ?, 1 FROM n",
            (rows, now_us() - HOUR_US, expires),
        )


async def seed_postgres(table: str, rows: int, *, expired: bool) -> None:
    connection = await asyncpg.connect(POSTGRES)
    offset = "- interval '1 hour'" if expired else "+ interval '1 hour'"
    await connection.execute(
        f"INSERT INTO \"{table}\" SELECT lpad(to_hex(i), 64, '0'), '{{\"n\":1}}'::bytea,"
        f" 'user' || (i % 1000), now() - interval '1 hour', now() {offset}, 1"
        f" FROM generate_series(1, {rows}) AS i"
    )
    await connection.close()


async def clear(url: str) -> None:
    async with create_store(url) as store:
        await store.clear()


async def drop_postgres(table: str) -> None:
    connection = await asyncpg.connect(POSTGRES)
    await connection.execute(f'DROP TABLE IF EXISTS "{table}"')
    await connection.close()


def measure(*argv: str) -> tuple[float, float, str]:
    """Run ``asgi-sessions ARGV``; return seconds, peak RSS in MB and its output."""
    command = [sys.executable, "-m", "asgi_sessions.cli", *argv]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    output = process.stdout.read().decode().strip()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"asgi-sessions {' '.join(argv)} failed: {output}")
    return elapsed, usage.ru_maxrss / 1024, output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    rows = parser.parse_args().rows
    table = f"scale_{uuid.uuid4().hex[:8]}"
    pg_url = f"{POSTGRES}?table_name={table}"
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "sessions.db"
        sqlite_url = f"sqlite:///{db}"
        try:
            for name, url in (("SQLite", sqlite_url), ("PostgreSQL", pg_url)):
                asyncio.run(make_schema(url))
                if name == "SQLite":
                    seed_sqlite(db, rows, expired=True)
                else:
                    asyncio.run(seed_postgres(table, rows, expired=True))
                cleanup = measure("cleanup", url, "--batch-size", "5000", "--pause-ratio", "0")
                results.append((f"cleanup {name}", *cleanup))
            seed_sqlite(db, rows, expired=False)
            to_postgres = measure("migrate", sqlite_url, pg_url, "--yes")
            results.append(("migrate SQLite → PostgreSQL", *to_postgres))
            copy_url = f"sqlite:///{Path(tmp) / 'copy.db'}"
            to_sqlite = measure("migrate", pg_url, copy_url, "--yes")
            results.append(("migrate PostgreSQL → SQLite", *to_sqlite))
            redis_url = f"{REDIS}?prefix={table}:"
            to_redis = measure("migrate", pg_url, redis_url, "--yes")
            results.append(("migrate PostgreSQL → Redis", *to_redis))
            results.append(("stats Redis (streams every key)", *measure("stats", redis_url)))
            listing = measure("sessions", redis_url, "--user", "user1")
            results.append(("sessions Redis (one user)", *listing))
            asyncio.run(clear(redis_url))
            again = measure("migrate", sqlite_url, pg_url, "--yes")
            results.append(("migrate SQLite → PostgreSQL again (nothing to do)", *again))
        finally:
            asyncio.run(drop_postgres(table))
    print(f"\n{rows:,} sessions\n")
    print("| job | seconds | peak RSS (MB) | output |\n| --- | ---: | ---: | --- |")
    for job, seconds, peak, output in results:
        summary = output.splitlines()[-1].split(": ")[-1]
        print(f"| {job} | {seconds:.1f} | {peak:.0f} | {summary} |")


if __name__ == "__main__":
    main()

"""``python -m benchmarks [--quick] [--only SECTION] [--out DIR]``: run, print, write."""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from benchmarks import cleanup_bench, e2e, growth, report, throughput
from benchmarks.apps import VARIANTS
from benchmarks.floors import FLOORS
from benchmarks.settings import DEFAULT, QUICK, Env

SECTIONS: dict[str, Callable[[Env], Awaitable[Any]]] = {
    "throughput": throughput.run,
    "round_trips": throughput.round_trips,
    "e2e": e2e.run,
    "cleanup": cleanup_bench.run,
    "growth": growth.run,
}
PACKAGES = (
    "starlette",
    "starsessions",
    "redis",
    "asyncpg",
    "aiosqlite",
    "sqlalchemy",
    "asyncmy",
    "uvicorn",
    "httpx",
)


def _versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _names(listed: str | None) -> frozenset[str] | None:
    """The variants named by ``--variants``; ValueError for a name no variant has."""
    if listed is None:
        return None
    names = frozenset(name.strip() for name in listed.split(",") if name.strip())
    if unknown := sorted(names - {*VARIANTS, *FLOORS}):
        raise ValueError(f"unknown variants: {', '.join(unknown)}")
    return names


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke size: seconds, for CI")
    parser.add_argument("--only", choices=sorted(SECTIONS), help="run one section")
    parser.add_argument("--out", default="benchmarks/results", help="where results go")
    parser.add_argument(
        "--variants",
        help="comma-separated variants and floors to measure in throughput (default: all)",
    )
    args = parser.parse_args(argv)
    try:
        variants = _names(args.variants)
    except ValueError as exc:
        parser.error(str(exc))  # exits with status 2
    size = QUICK if args.quick else DEFAULT
    started = time.perf_counter()
    results: dict[str, Any] = {
        "meta": {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "command": "python -m benchmarks " + " ".join(argv or sys.argv[1:]),
            "size": size.name,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            "versions": _versions(),
        }
    }
    with (
        tempfile.TemporaryDirectory(prefix="asgi-sessions-bench-") as tmpdir,
        Env(size=size, tmpdir=tmpdir, variants=variants) as env,
    ):
        for name, section in SECTIONS.items():
            if args.only and name != args.only:
                continue
            print(f"== {name}", file=sys.stderr, flush=True)
            section_started = time.perf_counter()
            results[name] = await section(env)
            print(f"   {time.perf_counter() - section_started:.1f}s", file=sys.stderr)
        results["notes"] = env.notes
    results["meta"]["seconds"] = time.perf_counter() - started
    print(report.write(results, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

"""How big a run is, and where the servers are: shared by every section."""

from __future__ import annotations

import os
import socket
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from urllib.parse import urlsplit

POSTGRES_DSN = os.environ.get(
    "ASGI_SESSIONS_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("ASGI_SESSIONS_REDIS_URL", "redis://127.0.0.1:6379/0")
MYSQL_URL = os.environ.get("ASGI_SESSIONS_MYSQL_URL", "mysql+asyncmy://root@127.0.0.1:3306/test")


@dataclass(frozen=True)
class Size:
    """Durations, repetitions and row counts of one run."""

    name: str
    reps: int
    """Interleaved repetitions of every throughput cell; the median is reported."""
    seconds: float
    """Length of one throughput measurement."""
    warmup: float
    """Length of the unrecorded warm-up pass over every cell."""
    concurrency: tuple[int, ...]
    e2e_seconds: float
    cleanup_rows: int
    growth_levels: tuple[int, ...]
    samples: int
    """Latency samples per percentile measurement."""


QUICK = Size(
    name="quick",
    reps=2,
    seconds=0.05,
    warmup=0.02,
    concurrency=(1, 50),
    e2e_seconds=1.0,
    cleanup_rows=20_000,
    growth_levels=(1_000, 10_000),
    samples=300,
)
DEFAULT = Size(
    name="default",
    reps=7,
    seconds=0.3,
    warmup=0.1,
    concurrency=(1, 50),
    e2e_seconds=4.0,
    cleanup_rows=1_000_000,
    growth_levels=(1_000, 100_000, 1_000_000),
    samples=3000,
)


def reachable(url: str, default_port: int) -> bool:
    """Whether the server named by ``url`` accepts TCP connections (loopback only)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or default_port
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        return False
    return True


@dataclass
class Env:
    """Where this run keeps its data; every name carries this run's own namespace."""

    size: Size
    tmpdir: str
    postgres_dsn: str | None = POSTGRES_DSN
    redis_url: str | None = REDIS_URL
    mysql_url: str | None = MYSQL_URL
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    notes: list[str] = field(default_factory=list)
    variants: frozenset[str] | None = None
    """Measure only these variants and floors (``--variants``); None measures all."""
    redis_sentinel_url: str | None = None
    """Set once the run has started its own Redis Sentinel deployment (``servers``)."""
    own_servers: ExitStack = field(default_factory=ExitStack)
    """Stops the servers this run started, when the run ends (``with Env(...)``)."""

    def __post_init__(self) -> None:
        if self.postgres_dsn and not reachable(self.postgres_dsn, 5432):
            self.notes.append(f"PostgreSQL at {self.postgres_dsn} unreachable: its rows skipped")
            self.postgres_dsn = None
        if self.redis_url and not reachable(self.redis_url, 6379):
            self.notes.append(f"Redis at {self.redis_url} unreachable: its rows skipped")
            self.redis_url = None
        if self.mysql_url and not reachable(self.mysql_url, 3306):
            self.notes.append(f"MySQL/MariaDB at {self.mysql_url} unreachable: its rows skipped")
            self.mysql_url = None

    def __enter__(self) -> Env:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.own_servers.close()

    def wanted(self, name: str) -> bool:
        """Whether variant or floor ``name`` is to be measured in this run."""
        return self.variants is None or name in self.variants

    def namespace(self, label: str) -> str:
        """A table name or key prefix no one else uses: ``bench_<run>_<label>``."""
        return f"bench_{self.run_id}_{label.replace('-', '_')}"


ROW_COLUMNS = "key, data, user_id, created_at, expires_at, version"
"""The columns the benchmarks fill when they write session rows directly (the device
columns stay NULL, as for an untracked session)."""

"""Servers a test owns: a redis-server and a PostgreSQL cluster on free loopback ports.

Each can be stopped (or killed) and started again on the same port, so a test can take
its store's server away and bring it back. ``running_redis()`` and ``running_postgres()``
always stop what they started, killing with SIGKILL as a last resort, and remove their
temporary directory. A missing binary skips the test, or fails it when ``CI`` is set.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from asgi_sessions.testing._redis_servers import HOST, RedisServer, free_port, wait_until

__all__ = [
    "PostgresServer",
    "RedisServer",
    "accepts_connections",
    "free_port",
    "require",
    "running_postgres",
    "running_redis",
    "running_redis_with_replica",
    "wait_until",
]
POSTGRES_BIN = Path(os.environ.get("ASGI_SESSIONS_POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))


def require(*binaries: str | Path) -> None:
    """Skip (fail when CI is set) unless every binary can be run."""
    missing = [str(b) for b in binaries if shutil.which(str(b)) is None]
    if missing:
        message = f"needed to start a server of the test's own: {', '.join(missing)}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def accepts_connections(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=1).close()
    except OSError:
        return False
    return True


class PostgresServer:
    """A PostgreSQL cluster made by ``initdb`` in a temporary directory, trust auth, loopback."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.port = free_port()

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/postgres"

    def init(self) -> None:
        self._run("initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses={HOST} -c fsync=off"
        options += f" -c unix_socket_directories={self.directory}"
        log = self.directory / "postgres.log"
        self._run("pg_ctl", "-D", self.data, "-l", log, "-o", options, "-w", "-t", "30", "start")
        wait_until(lambda: accepts_connections(self.port), f"PostgreSQL on port {self.port}")

    def stop(self) -> None:
        """Shut down at once, rolling back open transactions (``pg_ctl stop -m fast``)."""
        self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "-t", "30", "stop")

    def kill(self) -> None:
        """SIGKILL the postmaster if it still runs: the last resort of a teardown."""
        with suppress(FileNotFoundError, ValueError, ProcessLookupError):
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGKILL)

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def _run(self, binary: str, *args: str | Path) -> None:
        command = [str(POSTGRES_BIN / binary), *map(str, args)]
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)


@contextmanager
def running_redis() -> Iterator[RedisServer]:
    """A started ``RedisServer``; stopped, and its directory removed, afterwards."""
    require("redis-server", "redis-cli")
    directory = Path(tempfile.mkdtemp(prefix="asgi-sessions-redis-"))
    server = RedisServer(directory)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def running_redis_with_replica() -> Iterator[tuple[RedisServer, RedisServer]]:
    """A started primary and its replica, in sync; both stopped and removed afterwards."""
    require("redis-server", "redis-cli")
    directory = Path(tempfile.mkdtemp(prefix="asgi-sessions-redis-"))
    primary, replica = RedisServer(directory), RedisServer(directory)
    while replica.port == primary.port:
        replica.port = free_port()
    try:
        primary.start()
        replica.start(replica_of=primary)
        wait_until(replica.in_sync, f"replica on port {replica.port} did not sync")
        yield primary, replica
    finally:
        replica.stop()
        primary.stop()
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """A started ``PostgresServer``; stopped (killed if need be) and removed afterwards."""
    require(POSTGRES_BIN / "initdb", POSTGRES_BIN / "pg_ctl")
    if os.geteuid() == 0:
        require("runuser")
    directory = Path(tempfile.mkdtemp(prefix="asgi-sessions-postgres-"))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    server = PostgresServer(directory)
    try:
        server.init()
        server.start()
        yield server
    finally:
        if server.running():
            try:
                server.stop()
            except (subprocess.SubprocessError, OSError):
                server.kill()
        shutil.rmtree(directory, ignore_errors=True)

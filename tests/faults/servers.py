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
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

HOST = "127.0.0.1"
STARTUP_TIMEOUT = 30.0
POSTGRES_BIN = Path(os.environ.get("ASGI_SESSIONS_POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))


def free_port() -> int:
    """A loopback port the kernel has just handed out as free."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def require(*binaries: str | Path) -> None:
    """Skip (fail when CI is set) unless every binary can be run."""
    missing = [str(b) for b in binaries if shutil.which(str(b)) is None]
    if missing:
        message = f"needed to start a server of the test's own: {', '.join(missing)}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def wait_until(ready: Callable[[], bool], what: str) -> None:
    """Poll ``ready`` every 50 ms until it returns True, for at most STARTUP_TIMEOUT."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {STARTUP_TIMEOUT} s")
        time.sleep(0.05)


def accepts_connections(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=1).close()
    except OSError:
        return False
    return True


class RedisServer:
    """A ``redis-server`` that keeps nothing on disk: a restart loses every key."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self, *, replica_of: RedisServer | None = None) -> None:
        """Start on this server's port; as a replica of ``replica_of`` if given."""
        command = ["redis-server", "--port", str(self.port), "--bind", HOST]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.directory)]
        command += ["--logfile", str(self.directory / f"redis-{self.port}.log")]
        if replica_of is not None:
            command += ["--replicaof", HOST, str(replica_of.port)]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        wait_until(self._pong, f"redis-server on port {self.port} did not answer PING")

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): it neither reads nor answers, its sockets stay open."""
        if self.process is not None:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused server run on (SIGCONT)."""
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)

    def in_sync(self) -> bool:
        """Whether this replica's link to its primary is up."""
        info = ["redis-cli", "-h", HOST, "-p", str(self.port), "INFO", "replication"]
        result = subprocess.run(info, capture_output=True, text=True, timeout=10, check=False)
        return "master_link_status:up" in result.stdout

    def kill(self) -> None:
        """End the server abruptly, as a crash would."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.resume()
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
            self.process = None

    def _pong(self) -> bool:
        ping = ["redis-cli", "-h", HOST, "-p", str(self.port), "PING"]
        result = subprocess.run(ping, capture_output=True, text=True, timeout=10, check=False)
        return result.stdout.strip() == "PONG"


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

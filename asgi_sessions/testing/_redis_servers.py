"""Real ``redis-server`` processes on loopback ports, for this project's tests and benchmarks.

Not public API. Both the test fixtures (``tests/redis_cluster.py``, ``tests/faults``,
``tests/redis_sentinel.py``) and the benchmarks start servers of their own through it:

- ``RedisServer``: one server that keeps nothing on disk, started as a replica if asked,
  and killed (SIGKILL), frozen (SIGSTOP) or stopped at will;
- ``running_sentinel()``: a primary, its replica and three Sentinels watching them, with
  a short ``down-after-milliseconds`` so that a killed primary is failed over in seconds;
  ``SentinelDeployment.url`` is the ``redis+sentinel://`` URL a store takes.

Everything started is stopped afterwards (SIGKILL as a last resort) and its temporary
directory removed.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "HOST",
    "SERVICE",
    "RedisServer",
    "SentinelDeployment",
    "SentinelServer",
    "free_port",
    "free_ports",
    "info_fields",
    "redis_cli",
    "running_sentinel",
    "wait_until",
]

HOST = "127.0.0.1"
STARTUP_TIMEOUT = 30.0
SERVICE = "mymaster"
"""The name the Sentinels know the primary by, as in Redis's own sentinel.conf."""


def free_ports(number: int) -> list[int]:
    """Ports the kernel has just handed out as free on loopback (held open until all are picked)."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(number)]
        for sock in sockets:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]


def free_port() -> int:
    """A loopback port the kernel has just handed out as free."""
    [port] = free_ports(1)
    return port


def redis_cli(port: int, *args: str) -> str:
    """Run ``redis-cli`` against the server on ``port``; return its output."""
    command = ["redis-cli", "-h", HOST, "-p", str(port), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=True)  # noqa: S603
    return done.stdout


def info_fields(text: str) -> dict[str, str]:
    """The ``field:value`` lines of an ``INFO`` (or ``CLUSTER INFO``) reply, as a dict."""
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {key: value.strip() for key, value in pairs}


def wait_until(ready: Callable[[], bool], what: str) -> None:
    """Poll ``ready`` every 50 ms until it returns True, for at most STARTUP_TIMEOUT."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {STARTUP_TIMEOUT} s")
        time.sleep(0.05)


class RedisServer:
    """A ``redis-server`` that keeps nothing on disk: a restart loses every key."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = free_port() if port is None else port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def command(self) -> list[str]:
        """The command line that starts this server."""
        command = ["redis-server", "--port", str(self.port), "--bind", HOST]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.directory)]
        command += ["--logfile", str(self.directory / f"redis-{self.port}.log")]
        return command

    def start(self, *, replica_of: RedisServer | None = None) -> None:
        """Start on this server's port; as a replica of ``replica_of`` if given."""
        command = self.command()
        if replica_of is not None:
            command += ["--replicaof", HOST, str(replica_of.port)]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL)  # noqa: S603
        wait_until(self._pong, f"redis-server on port {self.port} did not answer PING")

    @property
    def running(self) -> bool:
        return self.process is not None

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): it neither reads nor answers, its sockets stay open."""
        if self.process is not None:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused server run on (SIGCONT)."""
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)

    def cli(self, *args: str) -> str:
        return redis_cli(self.port, *args)

    def info(self, section: str) -> dict[str, str]:
        """``INFO section`` as a dict; empty if the server does not answer."""
        try:
            return info_fields(self.cli("INFO", section))
        except (subprocess.SubprocessError, OSError):
            return {}

    def in_sync(self) -> bool:
        """Whether this replica's link to its primary is up."""
        return self.info("replication").get("master_link_status") == "up"

    def kill(self) -> None:
        """End the server abruptly (SIGKILL), as a crash would: what it did not send is lost."""
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
        try:
            return self.cli("PING").strip() == "PONG"
        except (subprocess.SubprocessError, OSError):
            return False


class SentinelServer(RedisServer):
    """A Sentinel (``redis-server <config> --sentinel``) watching ``primary`` as SERVICE.

    Quorum 2: two of three Sentinels must agree that the primary is down. It is judged
    down after ``down_after_ms`` of silence. The Sentinel rewrites its config file as
    it learns, so a restarted one remembers what it knew.
    """

    def __init__(
        self,
        directory: Path,
        port: int,
        primary: RedisServer,
        *,
        down_after_ms: int,
        failover_timeout_ms: int,
    ) -> None:
        super().__init__(directory, port)
        self.config = directory / f"sentinel-{self.port}.conf"
        self.config.write_text(
            f"port {self.port}\nbind {HOST}\ndir {directory}\n"
            f"logfile {directory / f'sentinel-{self.port}.log'}\n"
            f"sentinel monitor {SERVICE} {HOST} {primary.port} 2\n"
            f"sentinel down-after-milliseconds {SERVICE} {down_after_ms}\n"
            f"sentinel failover-timeout {SERVICE} {failover_timeout_ms}\n"
            f"sentinel parallel-syncs {SERVICE} 1\n"
        )

    def command(self) -> list[str]:
        return ["redis-server", str(self.config), "--sentinel"]

    def primary_port(self) -> int | None:
        """The port of the primary this Sentinel names now; None if it does not answer."""
        try:
            answer = self.cli("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE).split()
        except (subprocess.SubprocessError, OSError):
            return None
        return int(answer[1]) if len(answer) == 2 else None

    def view(self) -> dict[str, str]:
        """``SENTINEL MASTER SERVICE`` as a dict (flags, num-other-sentinels, ...)."""
        try:
            fields = self.cli("SENTINEL", "MASTER", SERVICE).splitlines()
        except (subprocess.SubprocessError, OSError):
            return {}
        return dict(zip(fields[::2], fields[1::2], strict=False))


@dataclass
class SentinelDeployment:
    """A running primary, replica and three Sentinels; which is primary changes on failover."""

    servers: list[RedisServer]
    """The two data servers: the first started as primary, the second as its replica."""
    sentinels: list[SentinelServer]

    @property
    def url(self) -> str:
        """The ``redis+sentinel://`` URL naming every Sentinel, the service and db 0."""
        hosts = ",".join(f"{HOST}:{sentinel.port}" for sentinel in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def primary(self) -> RedisServer:
        """The server the Sentinels name as primary now."""
        ports = {sentinel.primary_port() for sentinel in self.sentinels if sentinel.running}
        if len(ports) != 1:
            raise LookupError(f"the Sentinels do not agree on a primary: {sorted(map(str, ports))}")
        [port] = ports
        return next(server for server in self.servers if server.port == port)

    def replica(self) -> RedisServer:
        """The data server that is not the primary now."""
        primary = self.primary()
        return next(server for server in self.servers if server is not primary)

    def healthy(self) -> bool:
        """Every Sentinel names one running primary and sees it up, with the others; and
        every other running server replicates it, in sync."""
        try:
            primary = self.primary()
        except LookupError:
            return False
        if not primary.running or primary.info("replication").get("role") != "master":
            return False
        for sentinel in self.sentinels:
            view = sentinel.view()
            others = len(self.sentinels) - 1
            if view.get("flags") != "master" or view.get("num-other-sentinels") != str(others):
                return False
        return all(
            server.in_sync() and server.info("replication").get("master_port") == str(primary.port)
            for server in self.servers
            if server.running and server is not primary
        )

    def wait_until_healthy(self) -> None:
        wait_until(self.healthy, "the Sentinel deployment did not become healthy")

    def wait_until_failed_over(self, killed: RedisServer) -> RedisServer:
        """Wait until the Sentinels name a primary other than ``killed``; return it."""

        def moved() -> bool:
            try:
                return self.primary() is not killed
            except LookupError:
                return False

        wait_until(moved, f"the Sentinels did not fail over from port {killed.port}")
        return self.primary()


@contextmanager
def running_sentinel(
    *, down_after_ms: int = 1000, failover_timeout_ms: int = 3000
) -> Iterator[SentinelDeployment]:
    """A primary, its replica and three Sentinels on free loopback ports, healthy; all
    stopped and their directory removed afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="asgi-sessions-sentinel-"))
    primary_port, replica_port, *sentinel_ports = free_ports(5)
    primary = RedisServer(directory, primary_port)
    replica = RedisServer(directory, replica_port)
    timeouts = {"down_after_ms": down_after_ms, "failover_timeout_ms": failover_timeout_ms}
    sentinels = [SentinelServer(directory, port, primary, **timeouts) for port in sentinel_ports]
    try:
        primary.start()
        replica.start(replica_of=primary)
        for sentinel in sentinels:
            sentinel.start()
        deployment = SentinelDeployment([primary, replica], sentinels)
        deployment.wait_until_healthy()
        yield deployment
    finally:
        for server in [*sentinels, replica, primary]:
            server.stop()
        shutil.rmtree(directory, ignore_errors=True)

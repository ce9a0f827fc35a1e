"""A real three-primary Redis Cluster on loopback ports, for tests that need one.

``running_cluster()`` starts ``redis-server`` processes in a temporary directory, joins
them with ``redis-cli --cluster create``, waits until every node reports
``cluster_state:ok`` and yields a ``redis+cluster://`` URL; afterwards it stops the
processes and removes the directory. The ``redis_cluster_url`` fixture shares one
cluster across the test run (load it with ``pytest_plugins = ["redis_cluster"]``).
Without ``redis-server`` the fixture skips, or fails when ``CI`` is set.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

PRIMARIES = 3
HOST = "127.0.0.1"
STARTUP_TIMEOUT = 30.0


def free_ports(number: int) -> list[int]:
    """Ports the kernel has just handed out as free on loopback (held open until all are picked)."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(number)]
        for sock in sockets:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]


def redis_cli(port: int, *args: str) -> str:
    """Run ``redis-cli`` against the node on ``port``; return its output."""
    command = ["redis-cli", "-h", HOST, "-p", str(port), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=10, check=True).stdout


def wait_until(condition_met: Iterator[bool], what: str) -> None:
    """Poll ``condition_met`` every 50 ms until it yields True or STARTUP_TIMEOUT passes."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    for met in condition_met:
        if met:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"Redis Cluster: {what} within {STARTUP_TIMEOUT} s")
        time.sleep(0.05)


def answers_ping(port: int) -> Iterator[bool]:
    while True:
        try:
            yield redis_cli(port, "PING").strip() == "PONG"
        except subprocess.CalledProcessError:
            yield False


def cluster_ok(ports: list[int]) -> Iterator[bool]:
    while True:
        yield all("cluster_state:ok" in redis_cli(port, "CLUSTER", "INFO") for port in ports)


@contextmanager
def running_cluster() -> Iterator[str]:
    """Start a three-primary cluster on free loopback ports; yield its ``redis+cluster://`` URL."""
    directory = Path(tempfile.mkdtemp(prefix="asgi-sessions-cluster-"))
    ports = free_ports(2 * PRIMARIES)  # a client port and a cluster bus port per node
    nodes = list(zip(ports[:PRIMARIES], ports[PRIMARIES:], strict=True))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for port, bus_port in nodes:
            command = ["redis-server", "--port", str(port), "--bind", HOST]
            command += ["--cluster-enabled", "yes", "--cluster-port", str(bus_port)]
            command += ["--cluster-config-file", str(directory / f"nodes-{port}.conf")]
            command += ["--dir", str(directory), "--save", "", "--appendonly", "no"]
            command += ["--logfile", str(directory / f"redis-{port}.log")]
            processes.append(subprocess.Popen(command, stdin=subprocess.DEVNULL))
        for port, _ in nodes:
            wait_until(answers_ping(port), f"node {port} did not answer PING")
        addresses = [f"{HOST}:{port}" for port, _ in nodes]
        create = ["--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"]
        redis_cli(nodes[0][0], *create)
        wait_until(cluster_ok([port for port, _ in nodes]), "cluster_state did not become ok")
        yield f"redis+cluster://{HOST}:{nodes[0][0]}"
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_cluster_url() -> Iterator[str]:
    """The URL of a cluster started for this test run and stopped at its end."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        message = "redis-server and redis-cli are needed to start a Redis Cluster"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with running_cluster() as url:
        yield url

"""A real Redis Cluster on loopback ports, for tests that need one.

``running_cluster()`` starts ``redis-server`` processes in a temporary directory, joins
them with ``redis-cli --cluster create``, waits until every node reports
``cluster_state:ok`` (and every replica has synced) and yields a ``Cluster``; afterwards
it stops the processes and removes the directory. By default three primaries and no
replica; ``replicas=1`` gives each primary a replica, and ``node_timeout_ms`` sets how
soon a silent primary is failed over.

Fixtures (load them with ``pytest_plugins = ["redis_cluster"]``):

- ``redis_cluster`` and its ``redis_cluster_url``: three primaries shared by the whole
  test run, for tests that read and write, or move a slot and move it on to the end;
- ``redis_cluster_of_its_own``: three primaries for one test, to freeze or stop;
- ``redis_cluster_with_replicas``: a cluster of its own for one test, each primary with
  a replica and a one-second node timeout, for tests that kill or move things.

Without ``redis-server`` they skip, or fail when ``CI`` is set.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from asgi_sessions.testing._redis_servers import (
    HOST,
    RedisServer,
    free_ports,
    info_fields,
    redis_cli,
    wait_until,
)

__all__ = ["Cluster", "Node", "free_ports", "redis_cli", "running_cluster", "wait_until"]

PRIMARIES = 3
FAILOVER_NODE_TIMEOUT_MS = 1000
"""Node timeout of the cluster with replicas: a primary silent this long is failed over."""


class Node(RedisServer):
    """One ``redis-server`` of the cluster; it keeps its cluster config across restarts,
    so a restarted node rejoins the cluster from its config file."""

    def __init__(self, port: int, bus_port: int, directory: Path, node_timeout_ms: int) -> None:
        super().__init__(directory, port)
        self.bus_port = bus_port
        self.node_timeout_ms = node_timeout_ms

    def command(self) -> list[str]:
        command = super().command()
        command += ["--cluster-enabled", "yes", "--cluster-port", str(self.bus_port)]
        command += ["--cluster-config-file", str(self.directory / f"nodes-{self.port}.conf")]
        command += ["--cluster-node-timeout", str(self.node_timeout_ms)]
        return command

    @property
    def id(self) -> str:
        """The node's cluster id, as ``CLUSTER SETSLOT`` takes it."""
        return self.cli("CLUSTER", "MYID").strip()

    def info(self, section: str) -> dict[str, str]:
        """``INFO section`` (``CLUSTER INFO`` for "cluster") as a dict. Unlike a plain
        server's, it raises if the node does not answer: a health check counts that."""
        text = self.cli("CLUSTER", "INFO") if section == "cluster" else self.cli("INFO", section)
        return info_fields(text)


@dataclass
class Cluster:
    """A running cluster: its nodes, its URL, and what tests do to it."""

    nodes: list[Node]

    @property
    def url(self) -> str:
        """A ``redis+cluster://`` URL naming the first node; the client learns the rest."""
        return f"redis+cluster://{HOST}:{self.nodes[0].port}"

    def node(self, port: int) -> Node:
        return next(node for node in self.nodes if node.port == port)

    def view(self) -> list[list[str]]:
        """``CLUSTER NODES`` of the first running node, one list of fields per node."""
        for node in self.nodes:
            if node.running:
                return [line.split() for line in node.cli("CLUSTER", "NODES").splitlines()]
        raise RuntimeError("no node of the cluster is running")

    def slot_owners(self) -> dict[int, Node]:
        """The primary serving each slot range, keyed by the range's first slot."""
        owners: dict[int, Node] = {}
        for fields in self.view():
            port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
            for served in fields[8:]:
                if not served.startswith("["):  # [slot->-id] marks a migration, not a range
                    owners[int(served.split("-")[0])] = self.node(port)
        return owners

    def primaries(self) -> list[Node]:
        """The nodes that serve slots now, in slot order."""
        return list(dict.fromkeys(owner for _, owner in sorted(self.slot_owners().items())))

    def replica_of(self, primary: Node) -> Node:
        """The node that replicates ``primary`` now."""
        view = self.view()
        ports = {fields[0]: int(fields[1].split("@")[0].rsplit(":", 1)[1]) for fields in view}
        for fields in view:
            if "slave" in fields[2].split(",") and ports.get(fields[3]) == primary.port:
                return self.node(ports[fields[0]])
        raise LookupError(f"no replica of node {primary.port}")

    def owner_of_slot(self, slot: int) -> Node:
        """The primary that serves ``slot`` now."""
        owners = sorted(self.slot_owners().items())
        return next(node for start, node in reversed(owners) if start <= slot)

    def healthy(self) -> bool:
        """Every running node says the cluster is ok, every slot is served by a running
        primary, and every running replica is in sync with its primary."""
        running = [node for node in self.nodes if node.running]
        try:
            if not all(node.info("cluster").get("cluster_state") == "ok" for node in running):
                return False
            if not all(owner.running for owner in self.slot_owners().values()):
                return False
            return all(
                node.info("replication").get("master_link_status", "up") == "up" for node in running
            )
        except subprocess.CalledProcessError:
            return False

    def wait_until_healthy(self) -> None:
        wait_until(self.healthy, "the cluster did not become healthy")

    def start_migration(self, slot: int, source: Node, target: Node) -> None:
        """Mark ``slot`` IMPORTING on ``target`` and MIGRATING on ``source``, as
        ``redis-cli --cluster reshard`` does before it moves any key."""
        target.cli("CLUSTER", "SETSLOT", str(slot), "IMPORTING", source.id)
        source.cli("CLUSTER", "SETSLOT", str(slot), "MIGRATING", target.id)

    def migrate(self, source: Node, target: Node, keys: list[str]) -> None:
        """Move ``keys`` from ``source`` to ``target`` atomically, one MIGRATE for all."""
        source.cli("MIGRATE", HOST, str(target.port), "", "0", "5000", "KEYS", *keys)

    def finish_migration(self, slot: int, source: Node, target: Node) -> None:
        """Move the slot's remaining keys, then give the slot to ``target`` everywhere."""
        while keys := source.cli("CLUSTER", "GETKEYSINSLOT", str(slot), "100").split():
            self.migrate(source, target, keys)
        for node in [target, source, *(n for n in self.primaries() if n not in (source, target))]:
            node.cli("CLUSTER", "SETSLOT", str(slot), "NODE", target.id)
        wait_until(lambda: self.owner_of_slot(slot) is target, f"slot {slot} did not move")


@contextmanager
def running_cluster(replicas: int = 0, node_timeout_ms: int = 15000) -> Iterator[Cluster]:
    """Start a three-primary cluster, with ``replicas`` per primary, on free loopback ports."""
    directory = Path(tempfile.mkdtemp(prefix="asgi-sessions-cluster-"))
    count = PRIMARIES * (1 + replicas)
    ports = free_ports(2 * count)  # a client port and a cluster bus port per node
    nodes = [
        Node(port, bus_port, directory, node_timeout_ms)
        for port, bus_port in zip(ports[:count], ports[count:], strict=True)
    ]
    cluster = Cluster(nodes)
    try:
        for node in nodes:
            node.start()
        addresses = [f"{HOST}:{node.port}" for node in nodes]
        create = ["--cluster", "create", *addresses, "--cluster-replicas", str(replicas)]
        nodes[0].cli(*create, "--cluster-yes")
        cluster.wait_until_healthy()
        yield cluster
    finally:
        for node in nodes:
            node.stop()
        shutil.rmtree(directory, ignore_errors=True)


def _require_redis() -> None:
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        message = "redis-server and redis-cli are needed to start a Redis Cluster"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[Cluster]:
    """A three-primary cluster started for this test run and stopped at its end.

    Shared: a test that changes it (moves a slot) leaves it serving every slot again.
    """
    _require_redis()
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis_cluster_url(redis_cluster: Cluster) -> str:
    """The URL of the shared three-primary cluster."""
    return redis_cluster.url


@pytest.fixture
def redis_cluster_of_its_own() -> Iterator[Cluster]:
    """A three-primary cluster for this test alone, to freeze or stop at will."""
    _require_redis()
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture
def redis_cluster_with_replicas() -> Iterator[Cluster]:
    """A cluster for this test alone: three primaries, a replica each, a 1 s node timeout."""
    _require_redis()
    with running_cluster(replicas=1, node_timeout_ms=FAILOVER_NODE_TIMEOUT_MS) as cluster:
        yield cluster

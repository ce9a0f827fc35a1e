"""Waiting for replicas: a write is acknowledged only once a replica has it.

With ``wait_for_replicas=1`` every write is followed by ``WAIT 1 <timeout>`` on the
connection that made it. On one server with a replica, and on a cluster with a replica
per primary: each write the store acknowledges is already on a replica (read there at
once), revoke included. While the replicas are frozen (SIGSTOP) no write is
acknowledged: each is StoreUnavailable within about the wait (the primary may still
have applied it, as when any answer is lost), while a store that does not wait goes on
acknowledging; once they run again, writes are acknowledged again.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from typing import cast

import pytest
from redis.asyncio import Redis
from redis.crc import key_slot
from redis_cluster import Cluster

from asgi_sessions.exceptions import StoreUnavailable
from asgi_sessions.stores._redis_client import RedisConnection
from asgi_sessions.stores.redis import RedisStore
from asgi_sessions.testing.clock import FrozenClock
from asgi_sessions.testing.store_suite import new_record
from faults.servers import running_redis_with_replica
from faults.stores import TIMEOUT
from faults.traffic import RECOVERY_DEADLINE

pytestmark = pytest.mark.anyio
pytest_plugins = ["redis_cluster"]

PREFIX = "waiting:"
WAIT_MS = int(TIMEOUT * 1000) // 2
"""The default wait: half the socket timeout."""


@dataclass
class Deployment:
    """Where the store connects, how to freeze and wake every replica, and which replica
    holds a given key."""

    url: str
    freeze: Callable[[], None]
    wake: Callable[[], None]
    replica_port: Callable[[str], int]


@pytest.fixture(params=["server", "cluster"])
def deployment(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    if request.param == "server":
        with running_redis_with_replica() as (primary, replica):
            yield Deployment(primary.url, replica.pause, replica.resume, lambda _: replica.port)
        return
    cluster: Cluster = request.getfixturevalue("redis_cluster_with_replicas")
    replicas = [cluster.replica_of(primary) for primary in cluster.primaries()]

    def freeze() -> None:
        for node in replicas:
            node.pause()

    def wake() -> None:
        for node in replicas:
            node.resume()

    def replica_port(name: str) -> int:
        return cluster.replica_of(cluster.owner_of_slot(key_slot(name.encode()))).port

    yield Deployment(cluster.url, freeze, wake, replica_port)


@pytest.fixture
async def store(deployment: Deployment, clock: FrozenClock) -> AsyncIterator[RedisStore]:
    """A store whose writes wait for one replica."""
    store = RedisStore(
        deployment.url,
        prefix=PREFIX,
        clock=clock,
        connect_timeout=TIMEOUT,
        socket_timeout=TIMEOUT,
        max_connections=10,
        wait_for_replicas=1,
    )
    try:
        yield store
    finally:
        await store.close()


async def on_replica(deployment: Deployment, key: str) -> dict[bytes, bytes]:
    """The record of ``key`` as the replica holding it has it, read there directly."""
    name = f"{PREFIX}s:{key}"
    replica = Redis(host="127.0.0.1", port=deployment.replica_port(name))
    try:
        if "cluster" in deployment.url:  # a cluster replica answers only READONLY clients
            await replica.execute_command("READONLY")  # type: ignore[no-untyped-call]
        return cast(dict[bytes, bytes], await replica.hgetall(name))
    finally:
        await replica.aclose()


async def test_every_write_acknowledged_is_already_on_a_replica(
    deployment: Deployment, store: RedisStore, clock: FrozenClock
) -> None:
    records = [new_record(clock, user_id=f"user{n % 2}") for n in range(12)]
    for record in records:
        await store.create(record)
        assert (await on_replica(deployment, record.key))[b"version"] == b"1"
        following = replace(record, data=b'{"next": true}', version=2)
        assert await store.update(following, expected_version=1)
        assert (await on_replica(deployment, record.key))[b"version"] == b"2"
    assert await store.destroy_user_sessions("user0") == 6
    for record in records:
        expected_there = record.user_id == "user1"
        assert bool(await on_replica(deployment, record.key)) is expected_there


async def test_no_write_is_acknowledged_while_no_replica_takes_it_and_service_resumes(
    deployment: Deployment, store: RedisStore, clock: FrozenClock
) -> None:
    records = [new_record(clock, user_id="alice") for _ in range(3)]
    for record in records:
        await store.create(record)
    not_waiting = RedisStore(deployment.url, prefix=PREFIX, clock=clock)
    deployment.freeze()
    try:
        started = time.perf_counter()
        with pytest.raises(StoreUnavailable, match="not known to be durable"):
            await store.create(new_record(clock))
        assert time.perf_counter() - started < 2 * TIMEOUT, "refused within about the wait"
        with pytest.raises(StoreUnavailable):
            await store.update(replace(records[0], version=2), expected_version=1)
        with pytest.raises(StoreUnavailable):
            await store.destroy_user_sessions("alice")
        unsafe = new_record(clock)
        await not_waiting.create(unsafe)  # acknowledged by the primary alone
        assert await not_waiting.read(unsafe.key) == unsafe
    finally:
        deployment.wake()
        await not_waiting.close()
    deadline = time.perf_counter() + RECOVERY_DEADLINE
    while True:
        try:
            await store.create(new_record(clock))
            break
        except StoreUnavailable:
            assert time.perf_counter() < deadline, "writes are acknowledged again"
    # A refused write was not acknowledged, yet the primary may have applied it (as
    # when any answer is lost): the revoke is repeated until acknowledged, as a caller
    # retrying after a 503 would.
    await store.destroy_user_sessions("alice")
    assert await store.user_sessions("alice") == []


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"wait_for_replicas": -1}, "must be 0 or more"),
        ({"wait_for_replicas": 1, "wait_timeout_ms": 500}, "below socket_timeout"),
        ({"wait_for_replicas": 1, "wait_timeout_ms": 0}, "above 0"),
    ],
)
def test_replica_wait_options_are_checked_when_the_store_is_built(
    options: dict[str, int], complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        RedisConnection(
            "redis://127.0.0.1:6379/0",
            None,
            connect_timeout=TIMEOUT,
            socket_timeout=TIMEOUT,
            max_connections=10,
            **options,
        )


async def test_waiting_for_replicas_is_refused_for_a_client_passed_in(redis_url: str) -> None:
    client = Redis.from_url(redis_url)
    try:
        with pytest.raises(ValueError, match="client built from a URL"):
            RedisConnection(
                redis_url,
                client,
                connect_timeout=TIMEOUT,
                socket_timeout=TIMEOUT,
                max_connections=10,
                wait_for_replicas=1,
            )
    finally:
        await client.aclose()

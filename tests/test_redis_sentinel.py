"""What a ``redis+sentinel://`` URL builds: a client of the primary the Sentinels name.

The conformance suites run on a Sentinel deployment (tests/conformance/test_redis.py),
and its failover under load is in tests/faults/test_sentinel_failover.py. Here: how the
URL is read (Sentinels, service, db, whose password is whose), what is refused, and that
writes reach the primary the Sentinels name, and with ``wait_for_replicas`` its replica.
"""

from __future__ import annotations

from typing import cast

import pytest
from redis.asyncio import Redis
from redis.asyncio.connection import SSLConnection
from redis.asyncio.sentinel import SentinelConnectionPool, SentinelManagedSSLConnection

from asgi_sessions.exceptions import StoreUnavailable
from asgi_sessions.stores import create_store
from asgi_sessions.stores._redis_client import open_client
from asgi_sessions.stores.redis import RedisStore
from asgi_sessions.testing import FrozenClock
from asgi_sessions.testing._redis_servers import SentinelDeployment
from asgi_sessions.testing.store_suite import new_key, new_record

pytestmark = pytest.mark.anyio
pytest_plugins = ["redis_sentinel"]

SECRET = "S3cretPW"


async def test_the_url_names_every_sentinel_the_service_the_db_and_whose_password_is_whose() -> (
    None
):
    url = (
        f"redis+sentinel://app:{SECRET}@s1:26380,s2,[::1]:26381/orders/3"
        "?sentinel_username=watch&sentinel_password=other&client_name=web"
    )
    # Builds the client; it connects on first use.
    client = await open_client(url, connect_timeout=1.0, socket_timeout=1.0, max_connections=5)
    try:
        assert isinstance(client, Redis)
        pool = client.connection_pool
        assert isinstance(pool, SentinelConnectionPool)
        assert pool.service_name == "orders"
        data = pool.connection_kwargs
        assert (data["db"], data["username"], data["password"]) == (3, "app", SECRET)
        assert data["client_name"] == "web"
        sentinels = [
            each.connection_pool.connection_kwargs for each in pool.sentinel_manager.sentinels
        ]
        assert [(each["host"], each["port"]) for each in sentinels] == [
            ("s1", 26380),
            ("s2", 26379),
            ("::1", 26381),
        ]
        assert {(each["username"], each["password"]) for each in sentinels} == {("watch", "other")}
        assert {each["socket_timeout"] for each in sentinels} == {1.0}
    finally:
        await client.aclose()


async def test_rediss_sentinel_reaches_the_sentinels_and_the_data_servers_over_tls() -> None:
    url = "rediss+sentinel://s1,s2/mymaster?ssl_cert_reqs=none"
    client = await open_client(url, connect_timeout=1.0, socket_timeout=1.0, max_connections=5)
    try:
        assert isinstance(client, Redis)
        pool = client.connection_pool
        assert isinstance(pool, SentinelConnectionPool)
        assert pool.connection_class is SentinelManagedSSLConnection
        assert pool.connection_kwargs["ssl_cert_reqs"] == "none"
        for sentinel in pool.sentinel_manager.sentinels:
            assert sentinel.connection_pool.connection_class is SSLConnection
            assert sentinel.connection_pool.connection_kwargs["ssl_cert_reqs"] == "none"
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    "url",
    [
        f"redis+sentinel://:{SECRET}@s1:26379",  # no service
        f"redis+sentinel://:{SECRET}@s1:port/mymaster/0",
        f"redis+sentinel://:{SECRET}@/mymaster/0",  # no Sentinel
        f"redis+sentinel://:{SECRET}@s1,,s2/mymaster/0",
        f"redis+sentinel://:{SECRET}@s1/mymaster/zero",
        f"redis+sentinel://:{SECRET}@s1/mymaster/0/extra",
    ],
)
def test_a_sentinel_url_of_another_shape_is_refused_saying_the_shape_without_the_password(
    url: str,
) -> None:
    with pytest.raises(ValueError, match=r"host:26379,host2:26379/service_name/db") as refused:
        create_store(url)
    assert SECRET not in str(refused.value)


def test_sentinel_credentials_are_refused_on_a_url_without_sentinels() -> None:
    with pytest.raises(ValueError, match="redis\\+sentinel:// URLs only") as refused:
        create_store(f"redis://cache:6379/0?sentinel_password={SECRET}")
    assert SECRET not in str(refused.value)


async def test_sentinels_that_do_not_answer_are_store_unavailable_naming_them() -> None:
    store = RedisStore(f"redis+sentinel://:{SECRET}@127.0.0.1:1,127.0.0.1:2/mymaster/0")
    with pytest.raises(
        StoreUnavailable, match=r"'mymaster'.*127\.0\.0\.1:1,127\.0\.0\.1:2"
    ) as down:
        await store.read(new_key())
    assert SECRET not in str(down.value)
    await store.close()


async def test_writes_go_to_the_primary_the_sentinels_name_and_wait_for_its_replica(
    redis_sentinel: SentinelDeployment, namespace: str, clock: FrozenClock
) -> None:
    prefix = f"{namespace}:"
    url = f"{redis_sentinel.url}?prefix={prefix}&wait_for_replicas=1"
    record = new_record(clock)
    async with create_store(url, clock=clock) as store:
        await store.create(record)
        for server, role in [
            (redis_sentinel.primary(), "master"),
            (redis_sentinel.replica(), "slave"),
        ]:
            direct = Redis(host="127.0.0.1", port=server.port)
            try:
                assert (await direct.info("replication"))["role"] == role
                stored = cast(dict[bytes, bytes], await direct.hgetall(f"{prefix}s:{record.key}"))
                assert stored[b"version"] == b"1"
            finally:
                await direct.aclose()
        await store.clear()

"""Both conformance suites on RedisStore: one Redis server, and a three-primary cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from asgi_sessions.stores.base import Clock, SessionStore
from asgi_sessions.stores.redis import RedisStore
from asgi_sessions.testing import MiddlewareConformance, StoreConformance

pytest_plugins = ["redis_cluster"]


class RedisStores:
    @pytest.fixture(params=["server", "cluster"])
    def url(self, request: pytest.FixtureRequest) -> str:
        fixture = "redis_url" if request.param == "server" else "redis_cluster_url"
        value: str = request.getfixturevalue(fixture)
        return value

    @pytest.fixture
    async def make_store(
        self, url: str, namespace: str
    ) -> AsyncIterator[Callable[[Clock], SessionStore]]:
        prefix = f"{namespace}:"
        yield lambda clock: RedisStore(url, prefix=prefix, clock=clock)
        async with RedisStore(url, prefix=prefix) as store:
            await store.clear()


class TestRedisStore(RedisStores, StoreConformance):
    @pytest.fixture
    def make_unavailable_store(
        self, url: str, unresponsive_address: tuple[str, int]
    ) -> Callable[[Clock], SessionStore]:
        host, port = unresponsive_address
        scheme = url.split("://")[0]
        return lambda clock: RedisStore(
            f"{scheme}://{host}:{port}", clock=clock, connect_timeout=0.2, socket_timeout=0.2
        )


class TestRedisMiddleware(RedisStores, MiddlewareConformance):
    pass

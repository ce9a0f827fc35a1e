"""Both conformance suites on RedisStore: one Redis server, a primary found through Redis
Sentinel (with a replica and three Sentinels), and a three-primary cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit, urlunsplit

import pytest

from asgi_sessions.stores.base import Clock, SessionStore
from asgi_sessions.stores.redis import RedisStore
from asgi_sessions.testing import MiddlewareConformance, StoreConformance

pytest_plugins = ["redis_cluster", "redis_sentinel"]

URL_FIXTURES = {
    "server": "redis_url",
    "sentinel": "redis_sentinel_url",
    "cluster": "redis_cluster_url",
}


class RedisStores:
    @pytest.fixture(params=list(URL_FIXTURES))
    def url(self, request: pytest.FixtureRequest) -> str:
        value: str = request.getfixturevalue(URL_FIXTURES[request.param])
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
        silent = urlunsplit(urlsplit(url)._replace(netloc=f"{host}:{port}"))
        return lambda clock: RedisStore(
            silent, clock=clock, connect_timeout=0.2, socket_timeout=0.2
        )


class TestRedisMiddleware(RedisStores, MiddlewareConformance):
    pass

"""Fixtures that give a test its own namespace on each real store, plain or behind a proxy.

Load with ``pytest_plugins = ["faults.stores"]``. ``store_url`` runs a
test on SQLite, PostgreSQL, Redis and a Redis Cluster, as ``tests/conformance`` does:
a fresh file, table or key prefix per test, removed afterwards. ``proxied_url`` does the
same on PostgreSQL and Redis through a ``FaultProxy``, with half-second timeouts.
``wait_for_replicas`` runs a failover test without waiting for a replica and with
``wait_for_replicas=1``, on the stores ``worker_stores`` builds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import pytest

from asgi_sessions.stores import create_store
from asgi_sessions.stores.base import SessionStore
from faults.proxy import FaultProxy

pytest_plugins = ["redis_cluster"]

BACKENDS = ["sqlite", "postgres", "redis", "cluster"]
NETWORKED = ["postgres", "redis"]
TIMEOUT = 0.5
"""Connect and command timeouts, in seconds, of a store behind a proxy."""


def with_options(url: str, **options: object) -> str:
    """``url`` with store options added to its query string, for ``create_store``."""
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(options)) if q)
    return urlunsplit(parts._replace(query=query))


def via(url: str, port: int) -> str:
    """``url`` pointed at 127.0.0.1:``port`` instead of its own server."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[0]
    netloc = f"{netloc}@127.0.0.1:{port}" if netloc else f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


async def remove_namespace(url: str) -> None:
    """Delete what a test left under its table or prefix; SQLite files go with tmp_path."""
    parts = urlsplit(url)
    if parts.scheme in ("postgresql", "postgres"):
        query = dict(parse_qsl(parts.query))
        table = query.pop("table_name")
        conn = await asyncpg.connect(urlunsplit(parts._replace(query=urlencode(query))))
        try:
            await conn.execute(f'DROP TABLE IF EXISTS "{table}"')
        finally:
            await conn.close()
    elif parts.scheme.startswith("redis"):
        async with create_store(url) as store:
            await store.clear()


def namespaced(backend: str, request: pytest.FixtureRequest, namespace: str) -> str:
    """The URL of ``backend``'s real server with this test's table name or key prefix."""
    if backend == "postgres":
        return with_options(request.getfixturevalue("postgres_dsn"), table_name=namespace)
    server = request.getfixturevalue("redis_url" if backend == "redis" else "redis_cluster_url")
    return with_options(server, prefix=f"{namespace}:")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
async def store_url(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, namespace: str
) -> AsyncIterator[str]:
    """A ``create_store`` URL over this test's own namespace on ``backend``."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / namespace}.db"
    else:
        url = namespaced(backend, request, namespace)
    yield url
    await remove_namespace(url)


@pytest.fixture(params=NETWORKED)
def networked(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
async def proxy(
    networked: str, request: pytest.FixtureRequest, namespace: str
) -> AsyncIterator[FaultProxy]:
    """A proxy in front of the real server of ``networked``."""
    server = urlsplit(namespaced(networked, request, namespace))
    async with FaultProxy(server.hostname or "127.0.0.1", server.port or 0) as running:
        yield running


@pytest.fixture
async def proxied_url(
    networked: str, proxy: FaultProxy, request: pytest.FixtureRequest, namespace: str
) -> AsyncIterator[str]:
    """A ``create_store`` URL through ``proxy``, with short timeouts and its own namespace."""
    direct = namespaced(networked, request, namespace)
    timeout = "command_timeout" if networked == "postgres" else "socket_timeout"
    yield with_options(via(direct, proxy.port), connect_timeout=TIMEOUT, **{timeout: TIMEOUT})
    await remove_namespace(direct)


@pytest.fixture(params=[0, 1], ids=["no-wait", "wait-for-1-replica"])
def wait_for_replicas(request: pytest.FixtureRequest) -> int:
    replicas: int = request.param
    return replicas


@asynccontextmanager
async def worker_stores(
    url: str, wait_for_replicas: int, *, prefix: str, workers: int = 2
) -> AsyncIterator[list[SessionStore]]:
    """One store per app worker, built from ``url`` as an app builds it, with half-second
    timeouts and ``wait_for_replicas`` in the query string; closed afterwards."""
    url = with_options(
        url,
        prefix=prefix,
        connect_timeout=TIMEOUT,
        socket_timeout=TIMEOUT,
        wait_for_replicas=wait_for_replicas,
    )
    built = [create_store(url) for _ in range(workers)]
    try:
        yield built
    finally:
        for store in built:
            await store.close()

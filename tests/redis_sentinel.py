"""A real Redis Sentinel deployment on loopback ports, for tests that need one.

A primary, its replica and three Sentinels (quorum two), started by
``asgi_sessions.testing._redis_servers.running_sentinel`` in a temporary directory and
stopped afterwards; a primary silent for a second is failed over.

Fixtures (load them with ``pytest_plugins = ["redis_sentinel"]``):

- ``redis_sentinel`` and its ``redis_sentinel_url``: one deployment shared by the whole
  test run, for tests that read and write;
- ``redis_sentinel_of_its_own``: a deployment for one test, to kill or freeze.

Without ``redis-server`` and ``redis-cli`` they skip, or fail when ``CI`` is set.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from asgi_sessions.testing._redis_servers import SentinelDeployment, running_sentinel


def _require_redis() -> None:
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        message = "redis-server and redis-cli are needed to start Redis Sentinel"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def redis_sentinel() -> Iterator[SentinelDeployment]:
    """A primary, replica and three Sentinels started for this test run, stopped at its end."""
    _require_redis()
    with running_sentinel() as deployment:
        yield deployment


@pytest.fixture(scope="session")
def redis_sentinel_url(redis_sentinel: SentinelDeployment) -> str:
    """The ``redis+sentinel://`` URL of the shared deployment."""
    return redis_sentinel.url


@pytest.fixture
def redis_sentinel_of_its_own() -> Iterator[SentinelDeployment]:
    """A primary, replica and three Sentinels for this test alone, to kill or freeze."""
    _require_redis()
    with running_sentinel() as deployment:
        yield deployment

"""Fixtures shared by every test module: event loop backend, real servers, namespaces."""

from __future__ import annotations

import os
import socket
import uuid
from urllib.parse import urlsplit

import pytest

from asgi_sessions.testing.clock import FrozenClock

POSTGRES_DSN = os.environ.get(
    "ASGI_SESSIONS_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("ASGI_SESSIONS_REDIS_URL", "redis://127.0.0.1:6379/0")
MYSQL_URL = os.environ.get(
    "ASGI_SESSIONS_MYSQL_URL", "mysql+asyncmy://root@127.0.0.1:3306/test"
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def namespace() -> str:
    """A name no other test uses: a table name, key prefix or file stem."""
    return f"t_{uuid.uuid4().hex[:12]}"


def require_server(url: str, default_port: int) -> str:
    """Return ``url`` if its server accepts TCP connections; skip, or fail when CI is set."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or default_port
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as exc:
        message = f"no server at {host}:{port} ({exc}); set the URL in the environment"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return url


@pytest.fixture
def postgres_dsn() -> str:
    return require_server(POSTGRES_DSN, 5432)


@pytest.fixture
def redis_url() -> str:
    return require_server(REDIS_URL, 6379)


@pytest.fixture
def mysql_url() -> str:
    """A SQLAlchemy URL of the MySQL or MariaDB server (``ASGI_SESSIONS_MYSQL_URL``)."""
    return require_server(MYSQL_URL, 3306)

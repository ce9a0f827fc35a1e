"""Testing with sessions: conformance suites for stores, a clock the test owns, a
recording store to count round trips, and logging a test client in directly.

Importing this package needs pytest, anyio and httpx (the ``testing`` extra:
``pip install 'asgi-server-sessions[testing]'``); importing ``asgi_sessions`` does not.
"""

from __future__ import annotations

import pytest

# Let pytest rewrite the suite's asserts so a failure shows both sides, not a bare error.
pytest.register_assert_rewrite(
    "asgi_sessions.testing.store_suite", "asgi_sessions.testing.middleware_suite"
)

from asgi_sessions.testing.client import login, login_sync  # noqa: E402
from asgi_sessions.testing.clock import FrozenClock  # noqa: E402
from asgi_sessions.testing.middleware_suite import MiddlewareConformance  # noqa: E402
from asgi_sessions.testing.recording import RecordingStore  # noqa: E402
from asgi_sessions.testing.store_suite import StoreConformance  # noqa: E402

__all__ = [
    "FrozenClock",
    "MiddlewareConformance",
    "RecordingStore",
    "StoreConformance",
    "login",
    "login_sync",
]

"""The middleware conformance suite: the session rules of SessionMiddleware, over any store.

Subclass ``MiddlewareConformance`` next to ``StoreConformance`` with the same
``make_store`` fixture; every test here then drives a real app through your store
with ``httpx.AsyncClient`` and checks what reached the store::

    class TestMyStoreMiddleware(MiddlewareConformance):
        @pytest.fixture
        def make_store(self, tmp_path: Path) -> Callable[[Clock], SessionStore]:
            return lambda clock: MyStore(tmp_path / "sessions.db", clock=clock)

One mixin per topic; ``MiddlewareConformance`` is all of them.
"""

from __future__ import annotations

from asgi_sessions.testing.middleware_suite._base import MiddlewareSuiteBase
from asgi_sessions.testing.middleware_suite.concurrency import Concurrency
from asgi_sessions.testing.middleware_suite.costs import Costs
from asgi_sessions.testing.middleware_suite.devices import Devices
from asgi_sessions.testing.middleware_suite.failures import Failures
from asgi_sessions.testing.middleware_suite.lazy import LazyLoading
from asgi_sessions.testing.middleware_suite.lifetimes import Lifetimes
from asgi_sessions.testing.middleware_suite.limits import SessionLimits
from asgi_sessions.testing.middleware_suite.login import LoginAndLogout
from asgi_sessions.testing.middleware_suite.restarts import Restarts

__all__ = [
    "Concurrency",
    "Costs",
    "Devices",
    "Failures",
    "LazyLoading",
    "Lifetimes",
    "LoginAndLogout",
    "MiddlewareConformance",
    "MiddlewareSuiteBase",
    "Restarts",
    "SessionLimits",
]


class MiddlewareConformance(
    Costs,
    LoginAndLogout,
    Lifetimes,
    Failures,
    Concurrency,
    LazyLoading,
    Restarts,
    Devices,
    SessionLimits,
):
    """Every session rule of SessionMiddleware, over the store ``make_store`` builds."""

from collections.abc import Callable

import pytest

from asgi_sessions.stores import MemoryStore
from asgi_sessions.stores.base import Clock, SessionStore
from asgi_sessions.testing.middleware_suite import MiddlewareConformance


class TestMemoryMiddleware(MiddlewareConformance):
    @pytest.fixture
    def make_store(self) -> Callable[[Clock], SessionStore]:
        return lambda clock: MemoryStore(clock=clock)

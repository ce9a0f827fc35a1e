"""Both conformance suites on MemoryStore."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from asgi_sessions.stores.base import Clock, SessionStore
from asgi_sessions.stores.memory import MemoryStore
from asgi_sessions.telemetry import Telemetry
from asgi_sessions.testing import MiddlewareConformance, StoreConformance


class MemoryStores:
    @pytest.fixture
    def make_store(self) -> Callable[[Clock], SessionStore]:
        return lambda clock: MemoryStore(clock=clock)


class TestMemoryStore(MemoryStores, StoreConformance):
    pass


class TestMemoryMiddleware(MemoryStores, MiddlewareConformance):
    pass


class TracedMemoryStores:
    """MemoryStore behind the OpenTelemetry wrapper: the wrapper forwards every call."""

    @pytest.fixture
    def make_store(self) -> Callable[[Clock], SessionStore]:
        telemetry = Telemetry()
        return lambda clock: telemetry.traced(MemoryStore(clock=clock))


class TestTracedMemoryStore(TracedMemoryStores, StoreConformance):
    pass

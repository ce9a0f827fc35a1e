"""The fixtures every part of the store suite runs on; a store author overrides ``make_store``."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from asgi_sessions.stores.base import Clock, SessionRecord, SessionStore
from asgi_sessions.testing.clock import FrozenClock
from asgi_sessions.testing.store_suite.support import HOUR, START, create_many

__all__ = ["StoreFixtures"]


@pytest.mark.anyio
class StoreFixtures:
    """The fixtures of the suite. Each part of it (``StoreReadAndCreate`` and the others)
    builds on this class, so a store author may also run one part on its own."""

    @pytest.fixture
    def make_store(self) -> Callable[[Clock], SessionStore]:
        """Return a factory: each call builds a NEW store over the SAME namespace, with that clock.

        Override it in your subclass. It may take other fixtures, be async, and yield
        so it can clean the namespace (file, table, key prefix) up afterwards.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must override the make_store fixture: return a function "
            "that takes a clock and builds a new store object over this test's own "
            "namespace (file, table or key prefix), e.g. "
            "lambda clock: MyStore(path, clock=clock)"
        )

    @pytest.fixture
    def make_unavailable_store(self) -> Callable[[Clock], SessionStore] | None:
        """Optionally return a factory of stores whose server cannot be reached.

        Point it at a closed port, or at ``unresponsive_address`` with short timeouts;
        the suite then checks that every call raises StoreUnavailable. None skips that.
        """
        return None

    @pytest.fixture
    def unresponsive_address(self) -> Iterator[tuple[str, int]]:
        """A loopback (host, port) that accepts connections and never answers a byte."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(64)  # the kernel completes handshakes; nobody ever reads
            yield "127.0.0.1", listener.getsockname()[1]

    @pytest.fixture
    def anyio_backend(self) -> str:
        """Stores run on asyncio (some tests drive it directly), so the suite does too."""
        return "asyncio"

    @pytest.fixture
    def clock(self) -> FrozenClock:
        return FrozenClock(START)

    @pytest.fixture
    async def store(
        self, make_store: Callable[[Clock], SessionStore], clock: FrozenClock
    ) -> AsyncIterator[SessionStore]:
        """The store under test, closed afterwards."""
        store = make_store(clock)
        try:
            yield store
        finally:
            await store.close()

    @staticmethod
    async def create_many(
        store: SessionStore, clock: FrozenClock, number: int, *, lifetime: float = HOUR
    ) -> list[SessionRecord]:
        """Create ``number`` records, a hundred at a time concurrently."""
        return await create_many(store, clock, number, lifetime=lifetime)

"""A server that cannot be reached: every call that needs it raises StoreUnavailable."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from asgi_sessions.exceptions import StoreUnavailable
from asgi_sessions.stores.base import CONTRACT, Clock, SessionStore
from asgi_sessions.testing.clock import FrozenClock
from asgi_sessions.testing.store_suite.fixtures import StoreFixtures
from asgi_sessions.testing.store_suite.support import contract_call, new_record

__all__ = ["StoreUnreachableServer"]

SERVER_CALLS = tuple(name for name in CONTRACT if name != "close")
"""Every call of the contract but ``close``, which a store with nothing open just returns."""


class StoreUnreachableServer(StoreFixtures):
    """Stores built by ``make_unavailable_store`` raise StoreUnavailable, never a driver's
    error, and say what to do; closing one afterwards is fine."""

    @pytest.mark.parametrize("name", SERVER_CALLS)
    async def test_an_unreachable_server_raises_store_unavailable_from_every_call(
        self,
        make_unavailable_store: Callable[[Clock], SessionStore] | None,
        clock: FrozenClock,
        name: str,
    ) -> None:
        if make_unavailable_store is None:
            pytest.skip("make_unavailable_store is not overridden: no unreachable server given")
        store = make_unavailable_store(clock)  # builds without I/O, so this must not raise
        call = contract_call(store, name, new_record(clock, user_id="ada"))
        try:
            with pytest.raises(StoreUnavailable) as raised:
                await call()
            assert str(raised.value), "StoreUnavailable should say what happened and what to do"
        finally:
            await store.close()

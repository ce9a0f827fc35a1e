"""A store wrapper that records every call, for counting round trips without mocks."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager, nullcontext

from asgi_sessions.exceptions import StoreUnavailable
from asgi_sessions.stores.base import CONTRACT, SessionStore
from asgi_sessions.stores.wrapper import StoreWrapper


class RecordingStore(StoreWrapper):
    """Delegates every call of the contract to a real store and appends its name to ``calls``.

    ``fail()`` makes calls raise StoreUnavailable, as a store that is down would:
    the fault is injected, the store behind it stays real. A call is recorded once, by
    the name the caller used: a cleanup is ``cleanup_expired_sessions``, not also the
    ``delete_expired`` the store behind runs for it.
    """

    EVERY_CALL = frozenset(CONTRACT)

    def __init__(self, store: SessionStore) -> None:
        super().__init__(store)
        self.calls: list[str] = []
        self.failing: frozenset[str] = frozenset()

    def around(self, name: str) -> AbstractAsyncContextManager[object]:
        """Record the call; raise StoreUnavailable instead if it is made to fail."""
        assert name in self.EVERY_CALL, f"{name} is not a call of the store contract"
        self.calls.append(name)
        if name in self.failing:
            raise StoreUnavailable(f"injected fault: store is down during {name}()")
        return nullcontext()

    def fail(self, *names: str) -> None:
        """Make the named calls (every call if none named) raise StoreUnavailable."""
        unknown = set(names) - self.EVERY_CALL
        if unknown:
            raise ValueError(f"not calls of the store contract: {sorted(unknown)}")
        self.failing = frozenset(names) if names else self.EVERY_CALL

    def heal(self) -> None:
        """Stop injecting faults."""
        self.failing = frozenset()

    def reset(self) -> None:
        """Forget the calls recorded so far."""
        self.calls.clear()

"""A store wrapper that records every call, for counting round trips without mocks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import anyio

from asgi_sessions.exceptions import StoreUnavailable
from asgi_sessions.stores.base import CONTRACT, SessionStore
from asgi_sessions.stores.wrapper import StoreWrapper


class Hold:
    """One call of the contract held on its way to the store, or on its way back, until
    ``release()``: a point where a test can cancel the caller or act meanwhile."""

    def __init__(self, name: str, *, after: bool) -> None:
        self.name = name
        self.after = after
        """Whether the call is held after the store answered rather than before it was sent."""
        self.reached = anyio.Event()
        """Set when a call is held."""
        self._released = anyio.Event()

    def release(self) -> None:
        """Let the held call go on."""
        self._released.set()

    async def wait(self) -> None:
        """Hold the calling task here until released."""
        self.reached.set()
        await self._released.wait()


class RecordingStore(StoreWrapper):
    """Delegates every call of the contract to a real store and appends its name to ``calls``.

    ``fail()`` makes calls raise StoreUnavailable, as a store that is down would:
    the fault is injected, the store behind it stays real. A call is recorded once, by
    the name the caller used: a cleanup is ``cleanup_expired_sessions``, not also the
    ``delete_expired`` the store behind runs for it.
    """

    EVERY_CALL = frozenset(CONTRACT)
    STREAMED = frozenset({"all", "delete_expired"})
    """Calls that yield as they go, rather than answer once: they cannot be held."""

    def __init__(self, store: SessionStore) -> None:
        super().__init__(store)
        self.calls: list[str] = []
        self.failing: frozenset[str] = frozenset()
        self.holds: dict[str, Hold] = {}

    def around(self, name: str) -> AbstractAsyncContextManager[object]:
        """Record the call; raise StoreUnavailable instead if it is made to fail; hold it
        before or after the store where a test asked (``hold``)."""
        assert name in self.EVERY_CALL, f"{name} is not a call of the store contract"
        self.calls.append(name)
        if name in self.failing:
            raise StoreUnavailable(f"injected fault: store is down during {name}()")
        return self._held(self.holds.pop(name, None))

    @asynccontextmanager
    async def _held(self, held: Hold | None) -> AsyncIterator[None]:
        if held is not None and not held.after:
            await held.wait()
        yield
        if held is not None and held.after:
            await held.wait()

    def fail(self, *names: str) -> None:
        """Make the named calls (every call if none named) raise StoreUnavailable."""
        unknown = set(names) - self.EVERY_CALL
        if unknown:
            raise ValueError(f"not calls of the store contract: {sorted(unknown)}")
        self.failing = frozenset(names) if names else self.EVERY_CALL

    def hold(self, name: str, *, after: bool = False) -> Hold:
        """Hold the next call of ``name`` before it reaches the store (with ``after``, once
        the store has answered) until the returned Hold is released."""
        if name not in self.EVERY_CALL - self.STREAMED:
            raise ValueError(f"{name!r} is not a call of the store contract that can be held")
        held = self.holds[name] = Hold(name, after=after)
        return held

    def heal(self) -> None:
        """Stop injecting faults, and let held calls go."""
        self.failing = frozenset()
        for held in self.holds.values():
            held.release()
        self.holds.clear()

    def reset(self) -> None:
        """Forget the calls recorded so far."""
        self.calls.clear()

"""OpenTelemetry for sessions: a span per store call, and metrics (the ``otel`` extra).

``SessionMiddleware(telemetry=Telemetry())`` wraps the store in a ``TracedStore`` and
counts what the commit does. Instruments come from opentelemetry-api, so they cost next
to nothing until the app installs an SDK; without ``telemetry`` nothing is wrapped and
nothing is counted.

Spans (``session_store <operation>``) and measurements carry the operation and the
store's kind (``sqlite``, ``redis``...), never a token, a key or a user id.

| instrument | kind | attributes |
| --- | --- | --- |
| ``asgi_sessions.store.duration`` | histogram, seconds | operation, store, outcome |
| ``asgi_sessions.sessions`` | counter | event: created, login, regenerated, destroyed, |
| | | revoked, expired |
| ``asgi_sessions.refused`` | counter: 503 answers | reason: unavailable, conflict |
| ``asgi_sessions.write.retries`` | counter: compare-and-set retries after a concurrent write | |
| ``asgi_sessions.write.conflicts`` | counter: writes given up (SessionConflict) | |
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from asgi_sessions.stores.base import SessionStore
from asgi_sessions.stores.wrapper import StoreWrapper

__all__ = ["Telemetry", "TracedStore", "store_kind"]

_SCOPE = "asgi_sessions"


def _version() -> str:
    try:
        return version("asgi-server-sessions")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "0"


def store_kind(store: SessionStore) -> str:
    """A store's kind for telemetry: its class name without ``Store``, lower case."""
    name = type(store).__name__
    return (name[: -len("Store")] if name.endswith("Store") else name).lower() or "store"


class Telemetry:
    """The tracer and meters sessions report to; pass providers to use others than the
    global ones (tests pass the SDK's in-memory ones)."""

    def __init__(self, *, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        try:
            from opentelemetry import metrics, trace
        except ImportError as error:
            raise ModuleNotFoundError(
                "telemetry needs opentelemetry-api: pip install 'asgi-server-sessions[otel]'",
                name=error.name,
            ) from error
        self.tracer = trace.get_tracer(_SCOPE, _version(), tracer_provider=tracer_provider)
        meter = metrics.get_meter(_SCOPE, _version(), meter_provider=meter_provider)
        self.duration = meter.create_histogram(
            "asgi_sessions.store.duration", unit="s", description="Duration of store calls"
        )
        self.sessions = meter.create_counter(
            "asgi_sessions.sessions", description="Sessions created, ended and logged in"
        )
        self.refused = meter.create_counter(
            "asgi_sessions.refused", description="Requests answered 503 for their session"
        )
        self.retries = meter.create_counter(
            "asgi_sessions.write.retries",
            description="Compare-and-set writes retried after a concurrent write",
        )
        self.conflicts = meter.create_counter(
            "asgi_sessions.write.conflicts", description="Writes given up: SessionConflict"
        )

    def traced(self, store: SessionStore) -> TracedStore:
        """``store``, with a span and a duration for each call."""
        return TracedStore(store, self)


class TracedStore(StoreWrapper):
    """A store whose every call is a span and a duration measurement."""

    def __init__(self, store: SessionStore, telemetry: Telemetry) -> None:
        super().__init__(store)
        self.telemetry = telemetry
        self.kind = store_kind(store)

    def around(self, name: str) -> AbstractAsyncContextManager[object]:
        return self._span(name)

    @asynccontextmanager
    async def _span(self, name: str) -> AsyncIterator[None]:
        attributes = {"asgi_sessions.operation": name, "asgi_sessions.store": self.kind}
        outcome = "ok"
        started = time.perf_counter()
        with self.telemetry.tracer.start_as_current_span(
            f"session_store {name}", attributes=attributes
        ):
            try:
                yield
            except BaseException as exc:
                outcome = type(exc).__name__
                raise
            finally:
                self.telemetry.duration.record(
                    time.perf_counter() - started,
                    {**attributes, "asgi_sessions.outcome": outcome},
                )

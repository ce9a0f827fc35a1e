"""OpenTelemetry: spans per store call and the session metrics, read back from the
SDK's in-memory exporters; nothing identifying a session in any of them."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from asgi_sessions.stores.memory import MemoryStore
from asgi_sessions.stores.sqlite import SQLiteStore
from asgi_sessions.telemetry import Telemetry, store_kind
from asgi_sessions.testing import RecordingStore
from asgi_sessions.testing.app import build_app
from asgi_sessions.tokens import key_for

pytestmark = pytest.mark.anyio


class Exported:
    """The SDK's in-memory span exporter and metric reader behind one Telemetry."""

    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        tracing = TracerProvider()
        tracing.add_span_processor(SimpleSpanProcessor(self.spans))
        self.metrics = InMemoryMetricReader()
        self.telemetry = Telemetry(
            tracer_provider=tracing, meter_provider=MeterProvider(metric_readers=[self.metrics])
        )

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        """Each data point of the metric ``name``: its attributes and its value (a sum,
        or a histogram's count)."""
        found = []
        data = self.metrics.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        for point in metric.data.data_points:
                            value = getattr(point, "value", None)
                            if value is None:  # a histogram: how many were recorded
                                value = getattr(point, "count", 0)
                            found.append((dict(point.attributes or {}), value))
        return found

    def total(self, name: str, **attributes: str) -> int:
        wanted = {f"asgi_sessions.{k}": v for k, v in attributes.items()}
        return sum(value for found, value in self.points(name) if wanted.items() <= found.items())


@pytest.fixture
def exported() -> Exported:
    return Exported()


async def test_every_store_call_is_a_span_and_a_duration_without_the_key(
    exported: Exported, tmp_path: Any
) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    app = build_app(store, telemetry=exported.telemetry)
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        await client.post("/login/alice")
        await client.get("/read")
        token = client.cookies["session"]
    await store.close()

    spans = exported.spans.get_finished_spans()
    assert [span.name for span in spans] == ["session_store create", "session_store read"]
    for span in spans:
        assert span.attributes is not None
        assert span.attributes["asgi_sessions.store"] == "sqlite"
        text = repr(dict(span.attributes)) + span.name
        assert token not in text and key_for(token) not in text and "alice" not in text
    assert exported.total("asgi_sessions.store.duration", operation="read", store="sqlite") == 1


async def test_sessions_503s_retries_and_conflicts_are_counted(exported: Exported) -> None:
    store = RecordingStore(MemoryStore())
    app = build_app(store, telemetry=exported.telemetry)
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        await client.post("/set/cart", json=["apple"])
        await client.post("/login/alice")
        await client.post("/logout")
        store.fail("read")
        client.cookies.set("session", "a" * 43)
        assert (await client.get("/read")).status_code == 503
    assert exported.total("asgi_sessions.sessions", event="created") == 1
    assert exported.total("asgi_sessions.sessions", event="regenerated") == 1
    assert exported.total("asgi_sessions.sessions", event="login") == 1
    assert exported.total("asgi_sessions.sessions", event="destroyed") == 1
    assert exported.total("asgi_sessions.refused", reason="unavailable") == 1
    assert (
        exported.total("asgi_sessions.store.duration", operation="read", outcome="StoreUnavailable")
        == 1
    )


async def test_a_write_that_lost_its_session_counts_a_retry_and_a_conflict(
    exported: Exported,
) -> None:
    store = MemoryStore()
    app = build_app(store, telemetry=exported.telemetry)
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        await client.post("/login/alice")
        # the session is revoked between this request's load and its write
        async with anyio.create_task_group() as group:

            async def held_write() -> None:
                response = await client.post("/held/write", json={"cart": ["pear"]})
                assert response.status_code == 503

            group.start_soon(held_write)
            await app.state.reached.wait()
            await store.destroy_user_sessions("alice")
            app.state.gate.set()
    assert exported.total("asgi_sessions.write.retries") == 1
    assert exported.total("asgi_sessions.write.conflicts") == 1
    assert exported.total("asgi_sessions.refused", reason="conflict") == 1


def test_a_stores_kind_is_its_class_name_without_store() -> None:
    assert store_kind(MemoryStore()) == "memory"
    assert store_kind(RecordingStore(MemoryStore())) == "recording"

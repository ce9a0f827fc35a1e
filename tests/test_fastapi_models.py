"""Typed sessions for FastAPI: a pydantic model backed by the session, validated on load,
written back through the same compare-and-set merge, beside the dict API."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated
from uuid import UUID

import anyio
import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from asgi_sessions import SessionMiddleware
from asgi_sessions.fastapi import SessionDep, SessionModel
from asgi_sessions.stores import MemoryStore, SQLiteStore
from asgi_sessions.testing import RecordingStore
from examples import typed_cart

pytestmark = pytest.mark.anyio

OWNER = UUID("12345678-1234-5678-1234-567812345678")
WHEN = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


class Cart(BaseModel):
    items: list[str] = []
    total: Decimal = Decimal("0")
    updated_at: datetime | None = None
    owner: UUID | None = None


CartDep = Annotated[Cart, SessionModel()]


def shop(store: RecordingStore) -> FastAPI:
    app = FastAPI()
    app.state.gate = anyio.Event()
    app.state.reached = anyio.Event()

    @app.get("/cart")
    async def show(cart: CartDep) -> dict[str, object]:
        return {"items": cart.items, "total": str(cart.total), "types": [
            type(cart.total).__name__, type(cart.updated_at).__name__, type(cart.owner).__name__
        ]}

    @app.post("/cart/{item}")
    async def add(item: str, cart: CartDep, session: SessionDep) -> dict[str, str]:
        cart.items.append(item)
        cart.total += Decimal("1.10")
        cart.updated_at, cart.owner = WHEN, OWNER
        session["theme"] = "dark"  # the dict API, beside the model
        return {"ok": item}

    @app.post("/slow-cart/{item}")
    async def slow_add(item: str, cart: CartDep) -> dict[str, str]:
        app.state.reached.set()
        await app.state.gate.wait()
        cart.items.append(item)
        return {"ok": item}

    @app.post("/theme/{name}")
    async def theme(name: str, session: SessionDep) -> dict[str, str]:
        session["theme"] = name
        return {"ok": name}

    app.add_middleware(SessionMiddleware, store=store)
    return app


@pytest.fixture
def store() -> RecordingStore:
    return RecordingStore(MemoryStore())


@pytest.fixture
async def client(store: RecordingStore) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(shop(store))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client


async def test_the_model_round_trips_datetime_uuid_and_decimal(
    client: httpx.AsyncClient, store: RecordingStore
) -> None:
    assert (await client.post("/cart/apple")).status_code == 200
    assert (await client.post("/cart/pear")).status_code == 200
    shown = (await client.get("/cart")).json()
    assert shown == {
        "items": ["apple", "pear"],
        "total": "2.20",
        "types": ["Decimal", "datetime", "UUID"],
    }
    [record] = [r async for r in store.all()]
    assert b'"theme":"dark"' in record.data  # kept beside the model, in the same dict


async def test_a_read_only_request_writes_nothing(
    client: httpx.AsyncClient, store: RecordingStore
) -> None:
    await client.post("/cart/apple")
    store.reset()
    await client.get("/cart")
    assert store.calls == ["read"]


async def test_stored_data_that_does_not_validate_gives_the_defaults_and_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MemoryStore()
    transport = httpx.ASGITransport(shop(RecordingStore(store)))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        await client.post("/theme/light")
        [record] = [r async for r in store.all()]
        bad = record.data.replace(b'{"theme"', b'{"Cart":{"total":"not money"},"theme"')
        assert await store.update(dataclasses.replace(record, data=bad), expected_version=1)
        caplog.set_level(logging.WARNING, logger="asgi_sessions")
        response = await client.get("/cart")
    assert response.status_code == 200
    assert response.json()["items"] == []
    assert "does not validate as Cart" in caplog.text


async def test_a_model_change_merges_with_a_concurrent_dict_change(
    store: RecordingStore,
) -> None:
    app = shop(store)
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        await client.post("/cart/apple")
        async with anyio.create_task_group() as group:
            group.start_soon(client.post, "/slow-cart/pear")
            await app.state.reached.wait()
            assert (await client.post("/theme/light")).status_code == 200
            app.state.gate.set()
        shown = (await client.get("/cart")).json()
    assert shown["items"] == ["apple", "pear"]
    [record] = [r async for r in store.all()]
    assert b'"theme":"light"' in record.data


def test_a_model_with_a_required_field_is_refused_where_it_is_declared() -> None:
    class Login(BaseModel):
        user: str

    with pytest.raises(TypeError, match="give user a default"):
        SessionModel(Login)


def test_session_model_needs_a_pydantic_model() -> None:
    with pytest.raises(TypeError, match="needs a pydantic model"):
        SessionModel(dict)


async def test_the_typed_cart_example_keeps_its_cart(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "cart.db") as store:
        transport = httpx.ASGITransport(typed_cart.create_app(store))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await client.post("/cart/apple")
            await client.post("/cart/apple")
            cart = (await client.post("/cart/pear")).json()
            assert cart["items"] == {"apple": 2, "pear": 1}
            assert (await client.get("/cart")).json() == cart
            assert cart["total"] == "1.35"

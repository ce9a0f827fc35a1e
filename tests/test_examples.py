"""The plain Starlette example app, driven in-process with its sessions in tmp_path."""

from __future__ import annotations

import re
import runpy
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from asgi_sessions.stores import SQLiteStore
from examples import starlette_app

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "example.db")
    yield store
    await store.close()


@pytest.fixture
async def client(store: SQLiteStore) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(starlette_app.create_app(store))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def visits(page: httpx.Response) -> int:
    found = re.search(r'id="visits">(\d+)<', page.text)
    assert found is not None, page.text
    return int(found[1])


def user(page: httpx.Response) -> str | None:
    found = re.search(r'id="user">([^<]*)<', page.text)
    return None if found is None else found[1]


async def log_in(client: httpx.AsyncClient, username: str) -> httpx.Response:
    return await client.post("/login", data={"username": username})


async def test_counter_grows_with_each_visit(client: httpx.AsyncClient) -> None:
    assert [visits(await client.get("/")) for _ in range(3)] == [1, 2, 3]


async def test_login_keeps_the_count_and_logout_starts_afresh(
    client: httpx.AsyncClient, store: SQLiteStore
) -> None:
    first = await client.get("/")
    assert user(first) is None
    assert 'action="/login"' in first.text
    anonymous_cookie = client.cookies["session"]

    logged_in = await log_in(client, "ann")
    assert logged_in.status_code == 303
    assert logged_in.headers["location"] == "/"
    assert client.cookies["session"] != anonymous_cookie  # regenerated at login

    page = await client.get("/")
    assert (user(page), visits(page)) == ("ann", 2)
    assert "Welcome, ann!" in page.text
    page = await client.get("/")
    assert (user(page), visits(page)) == ("ann", 3)
    assert "Welcome" not in page.text  # a flash is shown once
    assert [record.user_id async for record in store.all()] == ["ann"]

    logged_out = await client.post("/logout")
    assert logged_out.status_code == 303

    page = await client.get("/")
    assert (user(page), visits(page)) == (None, 1)
    assert "You are logged out." in page.text
    assert await store.user_sessions("ann") == []


async def test_login_needs_a_name(client: httpx.AsyncClient) -> None:
    refused = await log_in(client, "   ")
    assert refused.status_code == 400
    assert "session" not in client.cookies


async def test_names_are_escaped_in_the_page(client: httpx.AsyncClient) -> None:
    await log_in(client, "<script>alert(1)</script>")
    page = await client.get("/")
    assert user(page) == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert "<script>" not in page.text


def test_module_app_uses_the_session_store_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``uvicorn examples.starlette_app:app`` reads SESSION_STORE and closes it at shutdown."""
    database = tmp_path / "from-env.db"
    monkeypatch.setenv("SESSION_STORE", f"sqlite:///{database}")
    app = runpy.run_path(starlette_app.__file__)["app"]  # a fresh import, as uvicorn does
    with TestClient(app) as client:
        assert client.get("/").status_code == 200
        page = client.get("/")
    assert 'id="visits">2<' in page.text
    assert database.exists()

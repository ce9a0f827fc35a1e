"""Starlette's own SessionMiddleware tests, run against ours with only the import and
``secret_key=`` changed to ``store=``: proof that switching is a one-line change."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from asgi_sessions import SessionMiddleware
from asgi_sessions.stores import SQLiteStore

ClientFactory = Callable[..., TestClient]


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    return SQLiteStore(tmp_path / "sessions.db")


@pytest.fixture
def test_client_factory() -> ClientFactory:
    return TestClient


def view_session(request: Request) -> JSONResponse:
    return JSONResponse({"session": request.session})


async def update_session(request: Request) -> JSONResponse:
    data = await request.json()
    request.session.update(data)
    return JSONResponse({"session": request.session})


async def clear_session(request: Request) -> JSONResponse:
    request.session.clear()
    return JSONResponse({"session": request.session})


def app_with(store: SQLiteStore, **options: Any) -> Starlette:
    return Starlette(
        routes=[
            Route("/view_session", endpoint=view_session),
            Route("/update_session", endpoint=update_session, methods=["POST"]),
            Route("/clear_session", endpoint=clear_session, methods=["POST"]),
        ],
        middleware=[Middleware(SessionMiddleware, store=store, **options)],
    )


def test_session(test_client_factory: ClientFactory, store: SQLiteStore) -> None:
    client = test_client_factory(app_with(store))

    response = client.get("/view_session")
    assert response.json() == {"session": {}}

    response = client.post("/update_session", json={"some": "data"})
    assert response.json() == {"session": {"some": "data"}}

    # check cookie max-age
    set_cookie = response.headers["set-cookie"]
    max_age_matches = re.search(r"; Max-Age=([0-9]+);", set_cookie)
    assert max_age_matches is not None
    assert int(max_age_matches[1]) == 14 * 24 * 3600

    response = client.get("/view_session")
    assert response.json() == {"session": {"some": "data"}}

    response = client.post("/clear_session")
    assert response.json() == {"session": {}}

    response = client.get("/view_session")
    assert response.json() == {"session": {}}


def test_session_expires(test_client_factory: ClientFactory, store: SQLiteStore) -> None:
    # Starlette accepts max_age=-1 and sends an already-expired cookie; a negative
    # lifetime is a configuration mistake here, refused with a clear error instead.
    with pytest.raises(ValueError, match="max_age must be zero or more seconds"):
        test_client_factory(app_with(store, max_age=-1)).get("/view_session")


def test_secure_session(test_client_factory: ClientFactory, store: SQLiteStore) -> None:
    app = app_with(store, https_only=True)
    secure_client = test_client_factory(app, base_url="https://testserver")
    unsecure_client = test_client_factory(app, base_url="http://testserver")

    response = unsecure_client.get("/view_session")
    assert response.json() == {"session": {}}

    response = unsecure_client.post("/update_session", json={"some": "data"})
    assert response.json() == {"session": {"some": "data"}}

    response = unsecure_client.get("/view_session")
    assert response.json() == {"session": {}}

    response = secure_client.get("/view_session")
    assert response.json() == {"session": {}}

    response = secure_client.post("/update_session", json={"some": "data"})
    assert response.json() == {"session": {"some": "data"}}

    response = secure_client.get("/view_session")
    assert response.json() == {"session": {"some": "data"}}

    response = secure_client.post("/clear_session")
    assert response.json() == {"session": {}}

    response = secure_client.get("/view_session")
    assert response.json() == {"session": {}}


def test_session_cookie_subpath(test_client_factory: ClientFactory, store: SQLiteStore) -> None:
    second_app = Starlette(
        routes=[
            Route("/update_session", endpoint=update_session, methods=["POST"]),
        ],
        middleware=[Middleware(SessionMiddleware, store=store, path="/second_app")],
    )
    app = Starlette(routes=[Mount("/second_app", app=second_app)])
    client = test_client_factory(app, base_url="http://testserver/second_app")
    response = client.post("/update_session", json={"some": "data"})
    assert response.status_code == 200
    cookie = response.headers["set-cookie"]
    cookie_path_match = re.search(r"; path=(\S+);", cookie)
    assert cookie_path_match is not None
    cookie_path = cookie_path_match.groups()[0]
    assert cookie_path == "/second_app"


def test_invalid_session_cookie(test_client_factory: ClientFactory, store: SQLiteStore) -> None:
    app = app_with(store)
    client = test_client_factory(app)

    response = client.post("/update_session", json={"some": "data"})
    assert response.json() == {"session": {"some": "data"}}

    # we expect it to not raise an exception if we provide a bogus session cookie
    client = test_client_factory(app, cookies={"session": "invalid"})
    response = client.get("/view_session")
    assert response.json() == {"session": {}}


def test_session_cookie(test_client_factory: ClientFactory, store: SQLiteStore) -> None:
    client = test_client_factory(app_with(store, max_age=None))

    response = client.post("/update_session", json={"some": "data"})
    assert response.json() == {"session": {"some": "data"}}

    # check cookie max-age
    set_cookie = response.headers["set-cookie"]
    assert "Max-Age" not in set_cookie

    client.cookies.delete("session")
    response = client.get("/view_session")
    assert response.json() == {"session": {}}


def test_domain_cookie(test_client_factory: ClientFactory, store: SQLiteStore) -> None:
    client = test_client_factory(app_with(store, domain=".example.com"))

    response = client.post("/update_session", json={"some": "data"})
    assert response.json() == {"session": {"some": "data"}}

    # check cookie max-age
    set_cookie = response.headers["set-cookie"]
    assert "domain=.example.com" in set_cookie

    client.cookies.delete("session")
    response = client.get("/view_session")
    assert response.json() == {"session": {}}


@pytest.mark.parametrize("same_site", ["lax", "strict"])
def test_same_site_keyword(
    test_client_factory: ClientFactory, store: SQLiteStore, same_site: Any
) -> None:
    client = test_client_factory(app_with(store, same_site=same_site))
    response = client.post("/update_session", json={"some": "data"})
    assert f"samesite={same_site}" in response.headers["set-cookie"]


def test_session_cookie_keyword(test_client_factory: ClientFactory, store: SQLiteStore) -> None:
    client = test_client_factory(app_with(store, session_cookie="sid"))
    client.post("/update_session", json={"some": "data"})
    assert client.get("/view_session").json() == {"session": {"some": "data"}}
    assert client.cookies.get("sid") is not None


def test_testclient_with_and_without_context_manager(
    test_client_factory: ClientFactory, store: SQLiteStore
) -> None:
    app = app_with(store)
    plain = test_client_factory(app)
    plain.post("/update_session", json={"visits": 1})
    with test_client_factory(app, cookies=dict(plain.cookies)) as managed:
        assert managed.get("/view_session").json() == {"session": {"visits": 1}}
    assert plain.get("/view_session").json() == {"session": {"visits": 1}}

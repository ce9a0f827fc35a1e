"""The FastAPI dependencies and the example app, over every kind of store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.testclient import TestClient

from asgi_sessions import SessionMiddleware, create_store
from asgi_sessions.fastapi import SessionDep, UserIdDep, devices_router, require_user
from asgi_sessions.stores import MemoryStore, SQLiteStore
from asgi_sessions.testing import RecordingStore
from examples.fastapi_app import create_app

pytestmark = pytest.mark.anyio
pytest_plugins = ["faults.stores"]  # store_url: each kind of store, its own namespace


@pytest.fixture
async def example(store_url: str) -> AsyncIterator[FastAPI]:
    """The example app on each kind of store, in a namespace of its own."""
    async with create_store(store_url) as store:
        yield create_app(store)


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver")


async def test_login_me_and_logout(example: FastAPI) -> None:
    async with client_for(example) as client:
        assert (await client.get("/me")).status_code == 401
        assert (await client.post("/login", json={"username": "ann"})).status_code == 200
        assert (await client.get("/me")).json() == {"user": "ann", "visits": 1}
        assert (await client.get("/me")).json() == {"user": "ann", "visits": 2}
        assert (await client.post("/logout")).json() == {"logged_out": True}
        assert (await client.get("/me")).status_code == 401


async def test_sessions_listing_and_revoking_others(example: FastAPI) -> None:
    async with client_for(example) as laptop, client_for(example) as phone:
        await laptop.post("/login", json={"username": "bo"})
        await phone.post("/login", json={"username": "bo"})
        listing = (await laptop.get("/sessions")).json()
        assert len(listing) == 2
        assert sorted(item["current"] for item in listing) == [False, True]
        assert (await laptop.post("/sessions/revoke-others")).json() == {"revoked": 1}
        assert (await phone.get("/me")).status_code == 401
        assert (await laptop.get("/me")).status_code == 200


async def test_openapi_documents_the_session_cookie(example: FastAPI) -> None:
    async with client_for(example) as client:
        schema = (await client.get("/openapi.json")).json()
    scheme = schema["components"]["securitySchemes"]["session"]
    assert scheme == {
        "type": "apiKey",
        "in": "cookie",
        "name": "session",
        "description": "Session cookie set by SessionMiddleware at login.",
    }
    assert schema["paths"]["/me"]["get"]["security"] == [{"session": []}]
    assert "security" not in schema["paths"]["/login"]["post"]


async def test_dependency_without_middleware_says_what_to_do() -> None:
    app = FastAPI()

    @app.get("/")
    async def page(session: SessionDep) -> dict[str, str]:
        return {}

    async with client_for(app) as client:
        with pytest.raises(RuntimeError, match=r"app.add_middleware\(SessionMiddleware"):
            await client.get("/")


async def test_session_dep_loads_a_lazy_session_only_where_used(tmp_path: Path) -> None:
    store = RecordingStore(SQLiteStore(tmp_path / "lazy.db"))
    app = FastAPI()

    @app.post("/login")
    async def login(session: SessionDep) -> dict[str, str]:
        session.regenerate()
        session.user_id = "ann"
        return {}

    @app.get("/me")
    async def me(user_id: UserIdDep) -> dict[str, str]:
        return {"user": user_id}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    app.add_middleware(SessionMiddleware, store=store, autoload=False)
    async with client_for(app) as client:
        await client.post("/login")
        store.reset()
        assert (await client.get("/health")).json() == {"status": "ok"}
        assert store.calls == []
        assert (await client.get("/me")).json() == {"user": "ann"}
        assert store.calls == ["read"]
    await store.close()


# another cookie name

SidUserDep = Annotated[str, Depends(require_user("sid"))]
"""As docs/fastapi.md writes it, for SessionMiddleware(session_cookie="sid")."""


def sid_app() -> FastAPI:
    app = FastAPI()

    @app.post("/login")
    async def login(session: SessionDep) -> dict[str, str]:
        session.regenerate()
        session.user_id = "ann"
        return {}

    @app.get("/me")
    async def me(user_id: SidUserDep) -> dict[str, str]:
        return {"user": user_id}

    admin = APIRouter(dependencies=[Depends(require_user("sid"))])

    @admin.get("/admin")
    async def dashboard() -> dict[str, str]:
        return {"admin": "yes"}

    app.include_router(admin)
    app.add_middleware(SessionMiddleware, store=MemoryStore(), session_cookie="sid")
    return app


def test_require_user_for_another_cookie_answers_401_then_the_user() -> None:
    with TestClient(sid_app()) as client:
        assert client.get("/me").status_code == 401
        assert client.get("/admin").status_code == 401
        client.post("/login")
        assert "sid" in client.cookies
        assert client.get("/me").json() == {"user": "ann"}
        assert client.get("/admin").json() == {"admin": "yes"}


def test_require_user_gives_one_dependency_per_cookie_name() -> None:
    assert require_user("sid") is require_user("sid")
    assert require_user("sid") is not require_user()


async def test_openapi_declares_one_scheme_per_cookie_name() -> None:
    app = sid_app()

    @app.get("/other")
    async def other(user_id: UserIdDep) -> dict[str, str]:
        return {"user": user_id}

    async with client_for(app) as client:
        schema = (await client.get("/openapi.json")).json()
    schemes = schema["components"]["securitySchemes"]
    assert {name: scheme["name"] for name, scheme in schemes.items()} == {
        "sid": "sid",
        "session": "session",
    }
    paths = schema["paths"]
    assert paths["/me"]["get"]["security"] == [{"sid": []}]
    assert paths["/admin"]["get"]["security"] == [{"sid": []}]
    assert paths["/other"]["get"]["security"] == [{"session": []}]
    assert "security" not in paths["/login"]["post"]


def test_a_cookie_name_openapi_cannot_take_is_made_a_valid_scheme_name() -> None:
    app = FastAPI()

    @app.get("/me")
    async def me(user_id: Annotated[str, Depends(require_user("__Host-my session"))]) -> str:
        return user_id

    [(name, scheme)] = app.openapi()["components"]["securitySchemes"].items()
    assert (name, scheme["name"]) == ("__Host-my_session", "__Host-my session")


def devices_app(store: MemoryStore) -> FastAPI:
    app = FastAPI()
    app.add_middleware(SessionMiddleware, store=store, track_devices=True)
    app.include_router(devices_router(), prefix="/account")

    @app.post("/login/{user}")
    async def login(user: str, session: SessionDep) -> dict[str, bool]:
        session.regenerate()
        session.user_id = user
        return {"ok": True}

    return app


async def test_the_devices_router_lists_revokes_one_and_revokes_the_others() -> None:
    app = devices_app(MemoryStore())
    async with client_for(app) as laptop, client_for(app) as phone, client_for(app) as tv:
        assert (await laptop.get("/account/devices")).status_code == 401
        for client, agent in ((laptop, "Laptop/1"), (phone, "Phone/1"), (tv, "TV/1")):
            client.headers["user-agent"] = agent
            await client.post("/login/ann")
        listed = (await laptop.get("/account/devices")).json()
        assert sorted((d["user_agent"], d["current"]) for d in listed) == [
            ("Laptop/1", True),
            ("Phone/1", False),
            ("TV/1", False),
        ]
        assert {d["ip"] for d in listed} == {"127.0.0.1"}
        phone_id = next(d["id"] for d in listed if d["user_agent"] == "Phone/1")
        assert (await laptop.post(f"/account/devices/{phone_id}/revoke")).json() == {"revoked": 1}
        assert (await laptop.post(f"/account/devices/{phone_id}/revoke")).status_code == 404
        assert (await phone.get("/account/devices")).status_code == 401
        assert (await laptop.post("/account/devices/revoke-others")).json() == {"revoked": 1}
        assert (await tv.get("/account/devices")).status_code == 401
        assert [d["current"] for d in (await laptop.get("/account/devices")).json()] == [True]

"""Libraries that keep their own state in ``request.session`` work unchanged on ours:
authlib's OAuth client (state and PKCE verifier) and Starlette-WTF (CSRF token)."""

from __future__ import annotations

import base64
import hashlib
import importlib
import importlib.util
import json
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

import httpx
import pytest
from authlib.integrations.starlette_client import (  # type: ignore[import-untyped]
    OAuth,
    OAuthError,
)
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette_wtf import (  # type: ignore[import-untyped]
    CSRFProtectMiddleware,
    csrf_protect,
    csrf_token,
)

from asgi_sessions import Session, SessionMiddleware
from asgi_sessions.stores import SQLiteStore

pytestmark = pytest.mark.anyio

PROVIDER = "http://provider.test"
CLIENT_ID = "shop"
CLIENT_SECRET = "shop-secret"
PROFILE = {"sub": "user-42", "name": "Ann"}


def session_of(request: Request) -> Session:
    session: Session = request.scope["session"]
    return session


def client_for(app: Starlette, base_url: str = "http://testserver") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=base_url)


def authlib_httpx() -> ModuleType:
    """The httpx package authlib builds its clients on: httpx2 when installed, else httpx."""
    return importlib.import_module("httpx2") if importlib.util.find_spec("httpx2") else httpx


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "sessions.db")
    yield store
    await store.close()


async def stored_data(store: SQLiteStore) -> list[dict[str, Any]]:
    """Every stored session's data, decoded: what is kept server-side."""
    return [json.loads(record.data) async for record in store.all()]


# --- authlib ----------------------------------------------------------------------------


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def oauth_provider() -> Starlette:
    """An OAuth 2 provider that approves every request at once and checks PKCE."""
    grants: dict[str, dict[str, str]] = {}  # code -> the authorization request it answers
    access_tokens: set[str] = set()
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()

    async def authorize(request: Request) -> Response:
        query = dict(request.query_params)
        if query.get("client_id") != CLIENT_ID or query.get("code_challenge_method") != "S256":
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        code = secrets.token_urlsafe(16)
        grants[code] = query
        callback = f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"
        return RedirectResponse(callback, status_code=302)

    async def token(request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        grant = grants.pop(form.get("code", ""), None)
        if (
            grant is None
            or request.headers.get("authorization") != f"Basic {basic}"
            or form.get("grant_type") != "authorization_code"
            or form.get("redirect_uri") != grant["redirect_uri"]
            or s256(form.get("code_verifier", "")) != grant["code_challenge"]
        ):
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        access_token = secrets.token_urlsafe(16)
        access_tokens.add(access_token)
        return JSONResponse({"access_token": access_token, "token_type": "Bearer"})

    async def userinfo(request: Request) -> Response:
        scheme, _, access_token = request.headers.get("authorization", "").partition(" ")
        if scheme != "Bearer" or access_token not in access_tokens:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return JSONResponse(PROFILE)

    return Starlette(
        routes=[
            Route("/authorize", authorize),
            Route("/token", token, methods=["POST"]),
            Route("/userinfo", userinfo),
        ]
    )


def oauth_client_app(store: SQLiteStore, provider: Starlette) -> Starlette:
    """An app that logs users in with authlib, its HTTP calls served by ``provider``."""
    oauth = OAuth()
    oauth.register(
        "provider",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        authorize_url=f"{PROVIDER}/authorize",
        access_token_url=f"{PROVIDER}/token",
        api_base_url=f"{PROVIDER}/",
        client_kwargs={
            "code_challenge_method": "S256",
            "transport": authlib_httpx().ASGITransport(provider),
        },
    )

    async def login(request: Request) -> Response:
        response: Response = await oauth.provider.authorize_redirect(
            request, request.url_for("auth")
        )
        return response

    async def auth(request: Request) -> Response:
        try:
            token = await oauth.provider.authorize_access_token(request)
        except OAuthError as exc:
            return JSONResponse({"error": exc.error}, status_code=400)
        profile = (await oauth.provider.get("userinfo", token=token)).json()
        session = session_of(request)
        session.regenerate()
        session.user_id = profile["sub"]
        session["name"] = profile["name"]
        return JSONResponse(profile)

    async def me(request: Request) -> Response:
        session = session_of(request)
        return JSONResponse({"user_id": session.user_id, "name": session.get("name")})

    return Starlette(
        routes=[Route("/login", login), Route("/auth", auth, name="auth"), Route("/me", me)],
        middleware=[Middleware(SessionMiddleware, store=store)],
    )


@pytest.fixture
async def oauth_clients(
    store: SQLiteStore,
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """A browser on the app, and the same browser's visits to the provider."""
    provider = oauth_provider()
    async with (
        client_for(oauth_client_app(store, provider)) as browser,
        client_for(provider, PROVIDER) as at_provider,
    ):
        yield browser, at_provider


async def start_login(browser: httpx.AsyncClient, at_provider: httpx.AsyncClient) -> str:
    """Follow /login to the provider and return the callback URL it redirects to."""
    login = await browser.get("/login")
    assert login.status_code == 302
    authorize = urlsplit(login.headers["location"])
    assert f"{authorize.scheme}://{authorize.netloc}{authorize.path}" == f"{PROVIDER}/authorize"
    assert parse_qs(authorize.query)["state"]
    approved = await at_provider.get(login.headers["location"])
    assert approved.status_code == 302
    callback: str = approved.headers["location"]
    assert callback.startswith("http://testserver/auth?")
    return callback


async def test_authlib_login_keeps_state_and_pkce_verifier_in_the_session(
    store: SQLiteStore, oauth_clients: tuple[httpx.AsyncClient, httpx.AsyncClient]
) -> None:
    browser, at_provider = oauth_clients
    callback = await start_login(browser, at_provider)
    state = parse_qs(urlsplit(callback).query)["state"][0]
    [pending] = await stored_data(store)
    assert pending[f"_state_provider_{state}"]["data"]["code_verifier"]
    cookie_before = browser.cookies["session"]

    finished = await browser.get(callback)

    assert finished.status_code == 200, finished.text
    assert finished.json() == PROFILE
    assert browser.cookies["session"] != cookie_before  # regenerated at login
    assert (await browser.get("/me")).json() == {"user_id": "user-42", "name": "Ann"}
    assert await stored_data(store) == [{"name": "Ann"}]  # the state was consumed


async def test_authlib_refuses_a_callback_with_a_wrong_state(
    store: SQLiteStore, oauth_clients: tuple[httpx.AsyncClient, httpx.AsyncClient]
) -> None:
    browser, at_provider = oauth_clients
    callback = await start_login(browser, at_provider)
    code = parse_qs(urlsplit(callback).query)["code"][0]

    forged = await browser.get("/auth", params={"code": code, "state": "forged"})

    assert forged.status_code == 400
    assert forged.json() == {"error": "mismatching_state"}
    assert (await browser.get("/me")).json() == {"user_id": None, "name": None}


async def test_authlib_callback_cannot_be_replayed_once_its_state_is_consumed(
    oauth_clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    browser, at_provider = oauth_clients
    callback = await start_login(browser, at_provider)
    assert (await browser.get(callback)).status_code == 200

    replayed = await browser.get(callback)

    assert replayed.status_code == 400
    assert replayed.json() == {"error": "mismatching_state"}
    assert (await browser.get("/me")).json()["user_id"] == "user-42"


# --- Starlette-WTF ----------------------------------------------------------------------


def csrf_app(store: SQLiteStore) -> Starlette:
    """A form protected by Starlette-WTF, whose secret token lives in the session."""

    async def form(request: Request) -> Response:
        token = csrf_token(request)
        return HTMLResponse(f'<form method="post"><input name="csrf_token" value="{token}">')

    async def submit(request: Request) -> Response:
        return HTMLResponse("accepted")

    return Starlette(
        routes=[Route("/form", form), Route("/form", csrf_protect(submit), methods=["POST"])],
        middleware=[
            Middleware(SessionMiddleware, store=store),
            Middleware(CSRFProtectMiddleware, csrf_secret="signing-key-for-tests"),
        ],
    )


def token_in(page: httpx.Response) -> str:
    return page.text.split('value="')[1].split('"')[0]


CSRFClient = Callable[[], httpx.AsyncClient]


@pytest.fixture
def csrf_client(store: SQLiteStore) -> CSRFClient:
    app = csrf_app(store)
    return lambda: client_for(app)


async def test_starlette_wtf_csrf_token_round_trips_through_the_store(
    store: SQLiteStore, csrf_client: CSRFClient
) -> None:
    async with csrf_client() as browser:
        token = token_in(await browser.get("/form"))
        [data] = await stored_data(store)
        assert set(data) == {"csrf_token"}  # the secret is server-side, not in the cookie
        assert data["csrf_token"] not in browser.cookies["session"]

        accepted = await browser.post("/form", data={"csrf_token": token})

    assert accepted.status_code == 200
    assert accepted.text == "accepted"


@pytest.mark.parametrize("token", ["", "forged-token"])
async def test_starlette_wtf_rejects_a_missing_or_wrong_token(
    csrf_client: CSRFClient, token: str
) -> None:
    async with csrf_client() as browser:
        await browser.get("/form")
        rejected = await browser.post("/form", data={"csrf_token": token})
    assert rejected.status_code == 403


async def test_starlette_wtf_rejects_a_token_from_another_session(
    csrf_client: CSRFClient,
) -> None:
    async with csrf_client() as victim, csrf_client() as attacker:
        stolen = token_in(await attacker.get("/form"))
        await victim.get("/form")
        rejected = await victim.post("/form", data={"csrf_token": stolen})
    assert rejected.status_code == 403

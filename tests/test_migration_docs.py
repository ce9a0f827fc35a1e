"""The migration guide's before and after snippets run as written, and behave alike.

Each snippet is taken from docs/migration.md and run as a module. Redis-backed ones
get this test's own key prefix (the store class they import is swapped for the same
class with a prefix), so they share nothing with other tests.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import starsessions.stores.redis
from redis.asyncio import Redis
from starlette.applications import Starlette

import asgi_sessions.stores
from asgi_sessions.stores import RedisStore, SQLiteStore

pytestmark = pytest.mark.anyio

GUIDE = Path(__file__).parent.parent / "docs" / "migration.md"


def tabs(markdown: str) -> dict[str, str]:
    """The Python code under each ``=== "Title"`` tab of ``markdown``, dedented."""
    found = re.findall(r'^=== "([^"]+)"\n\n    ```python\n(.*?)^    ```$', markdown, re.M | re.S)
    return {title: textwrap.dedent(code) for title, code in found}


def snippets(section: str) -> dict[str, str]:
    """The tabs of the guide's section: "starlette" (the top) or "starsessions"."""
    starlette, _, starsessions = GUIDE.read_text().partition("\n## From starsessions\n")
    return tabs(starlette if section == "starlette" else starsessions)


def run(code: str) -> Starlette:
    """Run a snippet as a module and return the ``app`` it defines."""
    namespace: dict[str, Any] = {"__name__": "snippet"}
    exec(compile(code, str(GUIDE), "exec"), namespace)
    app: Starlette = namespace["app"]
    return app


def test_every_snippet_is_found() -> None:
    assert set(snippets("starlette")) == {"Before", "After"}
    assert set(snippets("starsessions")) == {"Before", "After"}


def middleware_options(app: Starlette) -> dict[str, Any]:
    [middleware] = app.user_middleware
    return dict(middleware.kwargs)


def test_starlette_before_and_after_build_with_the_same_cookie_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_KEY", "a secret for the test")
    monkeypatch.chdir(tmp_path)  # the "after" store is sessions.db, relative
    before = run(snippets("starlette")["Before"])
    after = run(snippets("starlette")["After"])

    before.build_middleware_stack()
    after.build_middleware_stack()

    expected = {"max_age": 3600, "https_only": True}
    assert {k: middleware_options(before)[k] for k in expected} == expected
    assert {k: middleware_options(after)[k] for k in expected} == expected
    assert isinstance(middleware_options(after)["store"], SQLiteStore)


@pytest.fixture
async def redis_namespace(
    redis_url: str, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[str]:
    """Point both libraries' Redis stores at the test server under this test's prefix."""
    their_store = starsessions.stores.redis.RedisStore

    def theirs(connection: Redis, **options: Any) -> Any:
        return their_store(connection=Redis.from_url(redis_url), prefix=namespace, **options)

    def ours(url: str, **options: Any) -> RedisStore:
        return RedisStore(redis_url, prefix=namespace, **options)

    monkeypatch.setattr(starsessions.stores.redis, "RedisStore", theirs)
    monkeypatch.setattr(asgi_sessions.stores, "RedisStore", ours)
    yield namespace
    async with Redis.from_url(redis_url) as client:
        assert [key async for key in client.scan_iter(f"{namespace}*")] == []


async def close_store(app: Starlette) -> None:
    store = middleware_options(app)["store"]
    if isinstance(store, RedisStore):
        await store.close()
    else:
        await store._connection.aclose()


@pytest.mark.parametrize("tab", ["Before", "After"])
async def test_starsessions_before_and_after_log_in_and_out_alike(
    redis_namespace: str, tab: str
) -> None:
    app = run(snippets("starsessions")[tab])
    transport = httpx.ASGITransport(app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="https://app") as client:
            login = await client.post("/login", json={"username": "ann"})
            assert login.json() == {"user": "ann"}
            assert "secure" in login.headers["set-cookie"].split("; ")
            assert "session" in client.cookies

            logout = await client.post("/logout")
            assert logout.json() == {"logged_out": True}
            assert "session" not in client.cookies
    finally:
        await close_store(app)

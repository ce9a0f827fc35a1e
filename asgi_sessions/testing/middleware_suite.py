"""The middleware conformance suite: the session rules of SessionMiddleware, over any store.

Subclass ``MiddlewareConformance`` next to ``StoreConformance`` with the
same ``make_store`` fixture; every test here then drives a real app through your
store with ``httpx.AsyncClient`` and checks what reached the store.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from asgi_sessions.exceptions import SessionNotLoaded
from asgi_sessions.stores.base import Clock, SessionStore
from asgi_sessions.testing.app import build_app
from asgi_sessions.testing.clock import FrozenClock
from asgi_sessions.testing.recording import RecordingStore

__all__ = ["MiddlewareConformance"]

DAY = 24 * 3600.0


def token_of(client: httpx.AsyncClient) -> str | None:
    """The session token the server last gave the client."""
    given = [c.value for c in client.cookies.jar if c.name == "session" and c.domain]
    return given[-1] if given else client.cookies.get("session")


def use_token(client: httpx.AsyncClient, token: str) -> None:
    """Make the client send ``token`` as its session cookie, like a replaying attacker."""
    client.cookies.clear()
    client.cookies.set("session", token)


def key_of(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@pytest.mark.anyio
class MiddlewareConformance:
    """Session behaviour through SessionMiddleware. Override ``make_store`` as for
    ``StoreConformance``."""

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    def make_store(self) -> Callable[[Clock], SessionStore]:
        raise NotImplementedError(
            "override the make_store fixture to return a factory of your store"
        )

    @pytest.fixture
    def clock(self) -> FrozenClock:
        return FrozenClock()

    @pytest.fixture
    async def store(
        self, make_store: Callable[[Clock], SessionStore], clock: FrozenClock
    ) -> AsyncIterator[RecordingStore]:
        recording = RecordingStore(make_store(clock))
        yield recording
        recording.heal()
        await recording.close()

    @pytest.fixture
    def options(self) -> dict[str, Any]:
        """SessionMiddleware options; the timeouts are short to make expiry visible."""
        return {"idle_timeout": 3600, "absolute_timeout": 4 * 3600, "touch_interval": 60}

    @pytest.fixture
    def app(self, store: RecordingStore, options: dict[str, Any]) -> Starlette:
        return build_app(store, **options)

    @pytest.fixture
    async def client(self, app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c

    async def _start(self, client: httpx.AsyncClient, store: RecordingStore) -> str:
        response = await client.post("/set/cart", json=["apple"])
        assert response.status_code == 200
        token = token_of(client)
        assert token is not None
        store.reset()
        return token

    # -- cost of a request -------------------------------------------------------

    async def test_request_without_cookie_costs_no_store_call(
        self, client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        for path in ("/untouched", "/read"):
            response = await client.get(path)
            assert response.status_code == 200
            assert "set-cookie" not in response.headers
        assert store.calls == []

    async def test_read_only_request_costs_one_round_trip(
        self, client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        await self._start(client, store)
        response = await client.get("/read")
        assert response.json()["data"] == {"cart": ["apple"]}
        assert store.calls == ["read"]
        assert "set-cookie" not in response.headers
        assert response.headers["vary"] == "Cookie"

    async def test_write_request_costs_a_read_and_an_update(
        self, client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        await self._start(client, store)
        await client.post("/set/cart", json=["apple", "pear"])
        assert store.calls == ["read", "update"]

    async def test_new_session_is_one_create_and_sets_a_safe_cookie(
        self, client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        response = await client.post("/set/cart", json=[])
        assert store.calls == ["create"]
        cookie = response.headers["set-cookie"]
        assert "httponly" in cookie and "samesite=lax" in cookie and "path=/;" in cookie
        assert "Max-Age=3600" in cookie
        assert response.headers["cache-control"] == "no-store"

    async def test_nested_mutation_is_saved(
        self, client: httpx.AsyncClient, store: RecordingStore, app: Starlette
    ) -> None:
        await self._start(client, store)
        await client.post("/set/cart", json=["apple", {"qty": 2}])
        assert (await client.get("/read")).json()["data"]["cart"] == ["apple", {"qty": 2}]

    # -- tokens at rest ---------------------------------------------------------

    async def test_store_holds_the_digest_never_the_token(
        self, client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        token = await self._start(client, store)
        assert await store.ids() == [key_of(token)]
        async for record in store.all():
            assert token.encode() not in record.data
            assert token not in (record.key, record.user_id)

    async def test_unknown_cookie_is_ignored_and_never_adopted(
        self, client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        chosen = "A" * 43
        use_token(client, chosen)
        response = await client.post("/set/x", json=1)
        assert response.json()["data"] == {"x": 1}
        assert token_of(client) != chosen
        assert key_of(chosen) not in await store.ids()

    async def test_malformed_cookie_costs_no_store_call(
        self, client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        for bad in ("short", "x" * 300, "bad*chars" * 5, "%00" * 20):
            use_token(client, bad)
            assert (await client.get("/read")).status_code == 200
        assert store.calls == []

    # -- login, logout, regenerate ---------------------------------------------

    async def test_login_regenerates_the_id_and_keeps_the_data(
        self, client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        old = await self._start(client, store)
        response = await client.post("/login/alice")
        assert response.json() == {"data": {"cart": ["apple"]}, "user_id": "alice"}
        new = token_of(client)
        assert new is not None and new != old
        assert await store.read(key_of(old)) is None
        [record] = await store.user_sessions("alice")
        assert record.key == key_of(new)

    async def test_logout_destroys_and_the_old_cookie_reads_nothing(
        self, client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        old = await self._start(client, store)
        response = await client.post("/logout")
        assert "Max-Age=0" in response.headers["set-cookie"]
        assert await store.count() == 0
        use_token(client, old)
        replay = await client.get("/read")
        assert replay.json()["data"] == {}
        assert await store.count() == 0

    async def test_logout_everywhere_keeps_only_the_current_session(
        self, app: Starlette, store: RecordingStore
    ) -> None:
        transport = httpx.ASGITransport(app)
        clients = [httpx.AsyncClient(transport=transport, base_url="http://t") for _ in range(3)]
        for client in clients:
            await client.post("/login/bob")
        keep = key_of(token_of(clients[0]) or "")
        assert await store.destroy_user_sessions("bob", keep=keep) == 2
        users = [(await c.get("/read")).json()["user_id"] for c in clients]
        assert users == ["bob", None, None]
        for client in clients:
            await client.aclose()

    # -- lifetimes ---------------------------------------------------------------

    async def test_idle_timeout_ends_an_unused_session(
        self, client: httpx.AsyncClient, store: RecordingStore, clock: FrozenClock
    ) -> None:
        await self._start(client, store)
        clock.advance(3600)
        assert (await client.get("/read")).json()["data"] == {}

    async def test_activity_slides_expiry_at_most_once_per_touch_interval(
        self, client: httpx.AsyncClient, store: RecordingStore, clock: FrozenClock
    ) -> None:
        await self._start(client, store)
        clock.advance(30)
        await client.get("/read")
        assert store.calls == ["read"]
        clock.advance(31)
        response = await client.get("/read")
        assert store.calls == ["read", "read", "extend_lifetime"]
        assert "Max-Age=3600" in response.headers["set-cookie"]
        clock.advance(3599)
        assert (await client.get("/read")).json()["data"] == {"cart": ["apple"]}

    async def test_absolute_timeout_ends_even_an_active_session(
        self, client: httpx.AsyncClient, store: RecordingStore, clock: FrozenClock
    ) -> None:
        await self._start(client, store)
        for _ in range(4):
            clock.advance(3000)
            assert (await client.get("/read")).json()["data"] == {"cart": ["apple"]}
        clock.advance(2400)  # exactly four hours after creation
        assert (await client.get("/read")).json()["data"] == {}

    async def test_cookie_max_age_follows_server_expiry(
        self, client: httpx.AsyncClient, store: RecordingStore, clock: FrozenClock
    ) -> None:
        await self._start(client, store)
        for _ in range(4):
            clock.advance(3000)
            await client.post("/set/n", json=1)
        clock.advance(600)  # 3h30m after creation: the absolute timeout is 30 minutes away
        response = await client.post("/set/n", json=2)
        assert "Max-Age=1800" in response.headers["set-cookie"]

    async def test_own_expiry_wins_over_the_middleware_timeouts(
        self, client: httpx.AsyncClient, store: RecordingStore, clock: FrozenClock
    ) -> None:
        await self._start(client, store)
        response = await client.post("/expiry", json=7 * DAY)
        assert f"Max-Age={int(7 * DAY)}" in response.headers["set-cookie"]
        clock.advance(5 * 3600)
        assert (await client.get("/read")).json()["data"]["cart"] == ["apple"]

    async def test_expiry_in_the_past_destroys_the_session(
        self, client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        await self._start(client, store)
        response = await client.post("/expiry", json=-1)
        assert "Max-Age=0" in response.headers["set-cookie"]
        assert await store.count() == 0

    async def test_expiry_zero_makes_a_browser_session_cookie(
        self, client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        await self._start(client, store)
        response = await client.post("/expiry", json=0)
        assert "Max-Age" not in response.headers["set-cookie"]
        assert await store.count() == 1

    # -- failures ------------------------------------------------------------------

    async def test_server_error_saves_nothing(
        self, client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        await self._start(client, store)
        assert (await client.post("/fail")).status_code == 500
        assert store.calls == ["read"]
        assert "doomed" not in (await client.get("/read")).json()["data"]

    async def test_store_down_is_a_503_and_the_cookie_survives(
        self, client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        token = await self._start(client, store)
        store.fail()
        response = await client.get("/read")
        assert response.status_code == 503
        assert response.headers["retry-after"]
        assert "set-cookie" not in response.headers
        assert (await client.get("/untouched")).status_code == 200
        store.heal()
        assert token_of(client) == token
        assert (await client.get("/read")).json()["data"] == {"cart": ["apple"]}

    async def test_failed_save_is_a_503_and_the_old_session_stays(
        self, client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        await self._start(client, store)
        store.fail("update")
        response = await client.post("/set/cart", json=["never"])
        assert response.status_code == 503
        assert "set-cookie" not in response.headers
        store.heal()
        assert (await client.get("/read")).json()["data"] == {"cart": ["apple"]}

    # -- concurrency -----------------------------------------------------------------

    async def _while_slow(
        self,
        app: Starlette,
        client: httpx.AsyncClient,
        slow: tuple[str, Any],
        fast: Callable[[], Any],
    ) -> httpx.Response:
        """Run a slow /slow-set request, do ``fast`` while it waits, then let it finish."""
        responses: list[httpx.Response] = []

        async def run_slow() -> None:
            responses.append(await client.post(f"/slow-set/{slow[0]}", json=slow[1]))

        async with anyio.create_task_group() as tg:
            tg.start_soon(run_slow)
            await app.state.reached.wait()
            await fast()
            app.state.gate.set()
        return responses[0]

    async def test_overlapping_requests_keep_both_keys(
        self, client: httpx.AsyncClient, store: RecordingStore, app: Starlette
    ) -> None:
        await self._start(client, store)

        async def fast() -> None:
            await client.post("/set/theme", json="dark")

        await self._while_slow(app, client, ("cart", ["apple", "pear"]), fast)
        data = (await client.get("/read")).json()["data"]
        assert data == {"cart": ["apple", "pear"], "theme": "dark"}

    async def test_overlapping_requests_on_one_key_later_commit_wins(
        self, client: httpx.AsyncClient, store: RecordingStore, app: Starlette
    ) -> None:
        await self._start(client, store)

        async def fast() -> None:
            await client.post("/set/cart", json=["fast"])

        await self._while_slow(app, client, ("cart", ["slow"]), fast)
        assert (await client.get("/read")).json()["data"] == {"cart": ["slow"]}

    async def test_logout_is_not_undone_by_slower_request(
        self, client: httpx.AsyncClient, store: RecordingStore, app: Starlette
    ) -> None:
        token = await self._start(client, store)

        async def fast() -> None:
            await client.post("/logout")

        slow = await self._while_slow(app, client, ("cart", ["zombie"]), fast)
        assert slow.status_code == 200
        assert "set-cookie" not in slow.headers
        assert await store.count() == 0
        use_token(client, token)
        assert (await client.get("/read")).json()["data"] == {}

    async def test_revoke_is_not_undone_by_slower_request(
        self, client: httpx.AsyncClient, store: RecordingStore, app: Starlette
    ) -> None:
        await client.post("/login/carol")
        store.reset()

        async def fast() -> None:
            await store.destroy_user_sessions("carol")

        await self._while_slow(app, client, ("cart", ["zombie"]), fast)
        assert await store.user_sessions("carol") == []
        assert await store.count() == 0

    # -- autoload=False: read only when the app asks ----------------------------------

    @pytest.fixture
    async def lazy_client(
        self, store: RecordingStore, options: dict[str, Any]
    ) -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(build_app(store, autoload=False, **options))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c

    async def test_lazy_request_that_never_loads_costs_no_store_call(
        self, client: httpx.AsyncClient, lazy_client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        use_token(lazy_client, await self._start(client, store))
        response = await lazy_client.get("/untouched")
        assert response.status_code == 200
        assert store.calls == []
        assert "set-cookie" not in response.headers

    async def test_lazy_session_is_read_once_when_loaded(
        self, client: httpx.AsyncClient, lazy_client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        use_token(lazy_client, await self._start(client, store))
        response = await lazy_client.get("/load-and-read")
        assert response.json()["data"] == {"cart": ["apple"]}
        assert store.calls == ["read"]

    async def test_lazy_session_used_before_loading_says_what_to_do(
        self, client: httpx.AsyncClient, lazy_client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        use_token(lazy_client, await self._start(client, store))
        with pytest.raises(SessionNotLoaded, match=r"await request.session.load\(\)"):
            await lazy_client.get("/read")
        assert store.calls == []

    async def test_lazy_new_session_is_written_and_read_back(
        self, client: httpx.AsyncClient, lazy_client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        lazy_client.cookies.clear()
        await lazy_client.post("/set/cart", json=["pear"])  # no cookie: nothing to load
        assert (await lazy_client.get("/load-and-read")).json()["data"] == {"cart": ["pear"]}
        assert store.calls == ["create", "read"]

    async def test_lazy_store_down_hurts_only_requests_that_load(
        self, client: httpx.AsyncClient, lazy_client: httpx.AsyncClient, store: RecordingStore
    ) -> None:
        use_token(lazy_client, await self._start(client, store))
        store.fail()
        assert (await lazy_client.get("/untouched")).status_code == 200
        response = await lazy_client.get("/load-and-read")
        assert response.status_code == 503
        assert "set-cookie" not in response.headers

    # -- flash and persistence ---------------------------------------------------------

    async def test_flash_messages_last_one_request(self, client: httpx.AsyncClient) -> None:
        await client.post("/flash", json="Saved!")
        assert (await client.get("/flashes")).json() == [["success", "Saved!"]]
        assert (await client.get("/flashes")).json() == []

    async def test_sessions_survive_an_app_restart(
        self,
        client: httpx.AsyncClient,
        store: RecordingStore,
        make_store: Callable[[Clock], SessionStore],
        clock: FrozenClock,
        options: dict[str, Any],
    ) -> None:
        if not store.persistent:
            pytest.skip("store does not keep records across instances")
        token = await self._start(client, store)
        await store.close()
        reopened = make_store(clock)
        transport = httpx.ASGITransport(build_app(reopened, **options))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            use_token(c, token)
            assert (await c.get("/read")).json()["data"] == {"cart": ["apple"]}
        await reopened.close()

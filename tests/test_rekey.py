"""``asgi-sessions rekey``: re-seal every record under a new key while the app serves,
on every store, with nobody logged out, and safe to run again."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import pytest
from keyrings import AFTER, BEFORE, ROTATED

from asgi_sessions.cli import main
from asgi_sessions.stores import create_store
from asgi_sessions.testing.app import build_app
from asgi_sessions.testing.clock import FrozenClock

pytestmark = pytest.mark.anyio
pytest_plugins = ["faults.stores"]

CLIENTS = 12


def client_of(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t")  # type: ignore[arg-type]


async def test_rotation_under_traffic_logs_nobody_out(
    store_url: str, clock: FrozenClock, capsys: pytest.CaptureFixture[str]
) -> None:
    store = create_store(store_url, clock=clock)
    tokens = []
    async with client_of(build_app(store, encryption=BEFORE)) as client:
        for n in range(CLIENTS):
            client.cookies.clear()
            assert (await client.post(f"/login/user{n}")).status_code == 200
            tokens.append(client.cookies["session"])
    rotated_app = build_app(store, encryption=ROTATED)  # the deploy that adds the new key
    seen: list[str | None] = []

    async def browse(token: str, rounds: int) -> None:
        async with client_of(rotated_app) as client:
            client.cookies.set("session", token)
            for n in range(rounds):
                response = await client.post("/set/n", json=n)
                assert response.status_code == 200, response.text
                seen.append(response.json()["user_id"])

    async with anyio.create_task_group() as group:
        for token in tokens:
            group.start_soon(browse, token, 5)
        code = await anyio.to_thread.run_sync(
            main, ["rekey", store_url, "--keyring", "keyrings:ROTATED"]
        )
    out = capsys.readouterr()
    assert code == 0, out.err
    assert None not in seen, "a client was logged out during the rotation"
    counts: dict[str, int] = {}
    for part in out.out.strip().split(": ", 1)[1].split(", "):
        number, outcome = part.split()
        counts[outcome] = int(number)
    assert counts["resealed"] + counts["current"] == CLIENTS, out.out
    async with client_of(build_app(store, encryption=AFTER)) as client:  # old key dropped
        for n, token in enumerate(tokens):
            client.cookies.set("session", token)
            assert (await client.get("/read")).json()["user_id"] == f"user{n}"
    again = ["rekey", store_url, "--keyring", "keyrings:ROTATED"]
    assert await anyio.to_thread.run_sync(main, again) == 0
    assert f"0 resealed, {CLIENTS} current" in capsys.readouterr().out
    await store.close()


@pytest.mark.parametrize(
    ("keyring", "message"),
    [
        ("keyrings:BOUND", "nothing to re-seal"),
        ("keyrings:NOT_A_RING", "not an asgi_sessions KeyRing"),
        ("keyrings:MISSING", "cannot load the key ring"),
    ],
)
def test_rekey_says_what_is_wrong_with_its_key_ring(
    capsys: pytest.CaptureFixture[str], keyring: str, message: str
) -> None:
    assert main(["rekey", "memory://", "--keyring", keyring]) == 1
    assert message in capsys.readouterr().err


def test_rekey_needs_a_module_and_a_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rekey", "memory://", "--keyring", "KEYRING"]) == 2
    assert "MODULE:NAME" in capsys.readouterr().err


async def test_migrate_moves_sealed_records_unchanged(tmp_path: Path, clock: FrozenClock) -> None:
    source_url, target_url = (f"sqlite:///{tmp_path / name}.db" for name in ("from", "to"))
    async with create_store(source_url, clock=clock) as source:
        async with client_of(build_app(source, encryption=AFTER)) as client:
            await client.post("/login/ann")
            token = client.cookies["session"]
        sealed = [record async for record in source.all()]
    assert await anyio.to_thread.run_sync(main, ["migrate", source_url, target_url]) == 0
    async with create_store(target_url, clock=clock) as target:
        assert [record async for record in target.all()] == sealed
        async with client_of(build_app(target, encryption=AFTER)) as client:
            client.cookies.set("session", token)
            assert (await client.get("/read")).json()["user_id"] == "ann"

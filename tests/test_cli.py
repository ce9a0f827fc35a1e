"""The ``asgi-sessions`` command line and the demo app it serves, over real SQLite files.

Commands run in-process through ``main()`` on a worker thread (each run owns its
event loop, as from a shell); the stores they touch are checked through the contract.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit, urlunsplit

import anyio
import httpx
import installed_store
import pytest
from demo_server import demo_process, free_port, wait_until_serving
from faults.stores import remove_namespace, with_options
from starlette.applications import Starlette

from asgi_sessions import create_session, tokens
from asgi_sessions.cli import main
from asgi_sessions.demo import build_demo
from asgi_sessions.devices import device_id
from asgi_sessions.stores import SQLiteStore, create_store
from asgi_sessions.stores.base import SessionRecord
from asgi_sessions.testing.app import build_app

pytestmark = pytest.mark.anyio
pytest_plugins = ["faults.stores"]  # store_url: each kind of store, its own namespace

HOUR = timedelta(hours=1)


class Terminal(io.StringIO):
    """Text stream that says it is a terminal, standing in for an interactive stdin/stderr."""

    def isatty(self) -> bool:
        return True


async def cli(*argv: str) -> int:
    """Run the command line as a shell would, in a thread with its own event loop."""
    return await anyio.to_thread.run_sync(main, list(argv))


@pytest.fixture
def source(store_url: str) -> str:
    """The store a command works on: each kind in turn, in a namespace of its own."""
    return store_url


@pytest.fixture
def target(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'target.db'}"


def make_record(
    name: str, user_id: str | None = None, *, lifetime: timedelta = HOUR, version: int = 1
) -> SessionRecord:
    """A record keyed by the digest of ``name``, expiring ``lifetime`` from now (may be past)."""
    now = datetime.now(UTC)
    return SessionRecord(
        tokens.key_for(f"{name}-token-{'x' * 22}"),
        f'{{"name": "{name}"}}'.encode(),
        user_id,
        now.replace(microsecond=123_457) - HOUR,
        now + lifetime,
        version,
    )


async def put(url: str, *records: SessionRecord) -> None:
    async with create_store(url) as store:
        for each in records:
            await store.create(each)


async def stored(url: str) -> dict[str, SessionRecord]:
    """Every live record at ``url``, by key."""
    async with create_store(url) as store:
        return {each.key: each async for each in store.all()}


async def user_keys(url: str, user_id: str) -> set[str]:
    async with create_store(url) as store:
        return {each.key for each in await store.user_sessions(user_id)}


@asynccontextmanager
async def browser(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``app`` in-process that keeps cookies and follows redirects."""
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", follow_redirects=True
    ) as client:
        yield client


# cleanup

SQL = pytest.mark.parametrize("backend", ["sqlite", "postgres"])
"""Stores where expired rows wait for a sweep; Redis drops them by itself."""


@SQL
async def test_cleanup_removes_expired_sessions_and_says_how_many(
    source: str, capsys: pytest.CaptureFixture[str]
) -> None:
    expired = [make_record(f"old{i}", lifetime=-HOUR) for i in range(5)]
    live = [make_record("fresh"), make_record("fresh2", "alice")]
    await put(source, *expired, *live)

    assert await cli("cleanup", source, "--batch-size", "2", "--pause-ratio", "0") == 0

    out, err = capsys.readouterr()
    assert out == "removed 5 expired sessions\n"
    assert err == ""  # not a terminal: quiet, as under cron
    assert set(await stored(source)) == {each.key for each in live}
    assert await cli("cleanup", source) == 0
    assert capsys.readouterr().out == "removed 0 expired sessions\n"


@SQL
async def test_cleanup_shows_progress_on_a_terminal(
    source: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    await put(source, *(make_record(f"old{i}", lifetime=-HOUR) for i in range(3)))
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)

    assert await cli("cleanup", source, "--batch-size", "1") == 0

    assert "removing expired sessions" in terminal.getvalue()
    assert capsys.readouterr().out == "removed 3 expired sessions\n"


@pytest.mark.parametrize("backend", ["redis", "cluster"])
async def test_cleanup_on_redis_keeps_live_sessions_and_says_how_many(
    source: str, capsys: pytest.CaptureFixture[str]
) -> None:
    live = [make_record("fresh"), make_record("fresh2", "alice")]
    await put(source, *(make_record(f"old{i}", "bob", lifetime=-HOUR) for i in range(3)), *live)

    assert await cli("cleanup", source) == 0

    assert re.fullmatch(r"removed \d+ expired sessions\n", capsys.readouterr().out)
    assert set(await stored(source)) == {each.key for each in live}
    assert await user_keys(source, "bob") == set()


# stats and sessions


async def test_stats_counts_live_sessions_and_distinct_users(
    source: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await put(
        source,
        make_record("a1", "alice"),
        make_record("a2", "alice"),
        make_record("b1", "bob"),
        make_record("anon"),
        make_record("gone", "carol", lifetime=-HOUR),
    )

    assert await cli("stats", source) == 0

    numbers = dict(
        (label.strip(), int(value))
        for label, value in (
            line.rsplit(maxsplit=1) for line in capsys.readouterr().out.splitlines()
        )
    )
    assert numbers == {
        "live sessions": 4,
        "of logged-in users": 3,
        "anonymous": 1,
        "users with sessions": 2,
    }


async def test_sessions_lists_key_prefixes_and_never_a_token(
    source: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with create_store(source) as store:
        handed_out = [await create_session(store, {"n": i}, user_id="alice") for i in range(2)]
        await create_session(store, user_id="bob")

    assert await cli("sessions", source, "--user", "alice") == 0

    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["KEY", "CREATED", "EXPIRES", "SEEN", "IP", "DEVICE"]
    assert [line[:16] for line in lines[1:]] == [tokens.key_for(t)[:16] for t in handed_out]
    for token in handed_out:
        assert token not in out
        assert tokens.key_for(token) not in out  # a prefix, not the whole key
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", lines[1])


async def test_sessions_shows_each_device_and_a_dash_where_none_was_recorded(
    source: str, capsys: pytest.CaptureFixture[str]
) -> None:
    seen = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
    agent = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) " + "x" * 200
    phone = dataclasses.replace(
        make_record("phone", "alice"), user_agent=agent, ip="198.51.100.0", last_seen_at=seen
    )
    await put(source, phone, make_record("laptop", "alice"))

    assert await cli("sessions", source, "--user", "alice") == 0

    rows = {line[:16]: line for line in capsys.readouterr().out.splitlines()[1:]}
    shown = rows[phone.key[:16]]
    assert "2031-05-06 07:08:09 UTC" in shown and "198.51.100.0" in shown
    assert shown.endswith(agent[:80])
    laptop = rows[make_record("laptop").key[:16]].split()
    assert laptop[-3:] == ["-", "-", "-"]


async def test_sessions_of_a_user_without_any_says_so(
    source: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await put(source, make_record("b", "bob"))

    assert await cli("sessions", source, "--user", "nobody") == 0
    assert capsys.readouterr().out == "no live sessions for user 'nobody'\n"


# revoke


@pytest.fixture
async def alice_and_bob(source: str) -> list[SessionRecord]:
    """Three sessions of alice, then one of bob."""
    records = [make_record(f"a{i}", "alice") for i in range(3)] + [make_record("b", "bob")]
    await put(source, *records)
    return records


async def test_revoke_with_yes_ends_every_session_of_the_user(
    source: str, alice_and_bob: list[SessionRecord], capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli("revoke", source, "--user", "alice", "--yes") == 0

    assert capsys.readouterr().out == "revoked 3 sessions of user 'alice'\n"
    assert set(await stored(source)) == {alice_and_bob[3].key}


async def test_repair_of_a_consistent_store_changes_nothing_and_says_so(
    source: str, alice_and_bob: list[SessionRecord], capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli("repair", source) == 0

    assert capsys.readouterr().out == "repaired the user index: 0 index links added or dropped\n"
    assert await cli("revoke", source, "--user", "alice", "--yes") == 0
    assert set(await stored(source)) == {alice_and_bob[3].key}


async def test_revoke_keeps_the_session_named_by_its_listed_prefix(
    source: str, alice_and_bob: list[SessionRecord], capsys: pytest.CaptureFixture[str]
) -> None:
    kept = alice_and_bob[1].key

    assert await cli("revoke", source, "--user", "alice", "--keep", kept[:16], "--yes") == 0

    assert capsys.readouterr().out == "revoked 2 sessions of user 'alice'\n"
    assert await user_keys(source, "alice") == {kept}


@pytest.mark.parametrize("keep", ["bob's", ""], ids=["another user's key", "empty prefix"])
async def test_revoke_refuses_a_keep_that_names_not_exactly_one_session_of_the_user(
    source: str,
    alice_and_bob: list[SessionRecord],
    capsys: pytest.CaptureFixture[str],
    keep: str,
) -> None:
    prefix = alice_and_bob[3].key[:16] if keep == "bob's" else keep

    assert await cli("revoke", source, "--user", "alice", "--keep", prefix, "--yes") == 1

    assert "nothing revoked" in capsys.readouterr().err
    assert len(await user_keys(source, "alice")) == 3


async def test_revoke_without_yes_and_without_a_terminal_refuses(
    source: str, alice_and_bob: list[SessionRecord], capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli("revoke", source, "--user", "alice") == 2

    out, err = capsys.readouterr()
    assert "--yes" in err
    assert out == ""
    assert len(await user_keys(source, "alice")) == 3


@pytest.mark.parametrize(("answer", "code", "left"), [("y\n", 0, 0), ("n\n", 1, 3), ("\n", 1, 3)])
async def test_revoke_asks_at_a_terminal(
    source: str,
    alice_and_bob: list[SessionRecord],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    answer: str,
    code: int,
    left: int,
) -> None:
    monkeypatch.setattr(sys, "stdin", Terminal(answer))

    assert await cli("revoke", source, "--user", "alice") == code

    assert "Revoke 3 sessions of user 'alice'? [y/N]" in capsys.readouterr().out
    assert len(await user_keys(source, "alice")) == left


async def test_one_of_anything_is_said_in_the_singular(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"sqlite:///{tmp_path / 'one.db'}"
    other = f"sqlite:///{tmp_path / 'other.db'}"
    await put(store, make_record("old", lifetime=-HOUR), make_record("bob's", "bob"))
    await put(other, make_record("elsewhere"))
    monkeypatch.setattr(sys, "stdin", Terminal("y\ny\n"))

    assert await cli("cleanup", store) == 0
    assert await cli("migrate", other, store) == 0
    assert await cli("revoke", store, "--user", "bob") == 0

    out = capsys.readouterr().out
    assert "removed 1 expired session\n" in out
    assert "already holds 1 session;" in out
    assert "Revoke 1 session of user 'bob'? [y/N]" in out
    assert "revoked 1 session of user 'bob'\n" in out
    assert "1 sessions" not in out


# migrate


async def test_migrate_copies_every_live_record_exactly(
    source: str, target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    live = [make_record("a", "alice", version=4), make_record("anon"), make_record("b", "bob")]
    await put(source, *live, make_record("gone", "alice", lifetime=-HOUR))

    assert await cli("migrate", source, target) == 0

    assert await stored(target) == {each.key: each for each in live}
    out = capsys.readouterr().out
    assert out == f"migrated {source} -> {target}: 3 copied, 0 replaced, 0 skipped\n"


async def test_migrate_twice_changes_nothing_the_second_time(
    source: str, target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await put(source, make_record("a", "alice"), make_record("b", version=7))
    assert await cli("migrate", source, target) == 0
    first = await stored(target)

    assert await cli("migrate", source, target, "--yes") == 0

    assert await stored(target) == first
    assert capsys.readouterr().out.splitlines()[-1].endswith("0 copied, 0 replaced, 2 skipped")


async def test_migrate_replaces_older_copies_and_keeps_newer_ones(
    source: str, target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    stale, ahead = make_record("stale", version=3), make_record("ahead", version=2)
    await put(source, stale, ahead)
    await put(target, dataclasses.replace(stale, data=b"{}", version=1))
    await put(target, dataclasses.replace(ahead, data=b'{"newer": 1}', version=5))

    assert await cli("migrate", source, target, "--yes") == 0

    result = await stored(target)
    assert result[stale.key] == stale
    assert result[ahead.key].version == 5  # written since by an app using the target
    assert capsys.readouterr().out.endswith("0 copied, 1 replaced, 1 skipped\n")


async def test_migrate_into_a_store_holding_sessions_asks_first(
    source: str, target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await put(source, make_record("a"))
    await put(target, make_record("other"))

    assert await cli("migrate", source, target) == 2

    assert "--yes" in capsys.readouterr().err
    assert len(await stored(target)) == 1


async def test_migrated_client_stays_logged_in_against_the_new_store(
    tmp_path: Path, store_url: str
) -> None:
    source, target = f"sqlite:///{tmp_path / 'app.db'}", store_url  # SQLite to each kind
    async with create_store(source) as old_store, browser(build_app(old_store)) as before:
        assert (await before.post("/login/alice")).status_code == 200
        await before.post("/set/cart", json=["book"])

    assert await cli("migrate", source, target) == 0

    async with create_store(target) as new_store, browser(build_app(new_store)) as after:
        after.cookies = before.cookies  # the same browser, now served from the new store
        seen = (await after.get("/read")).json()
    assert seen == {"data": {"cart": ["book"]}, "user_id": "alice"}


# stores of other packages


async def test_an_installed_store_is_reached_by_its_url(tmp_path: Path) -> None:
    """A package that names its store in the asgi_sessions.stores entry points, as pip
    would install it, is used by URL in a new process; nothing here imports it."""
    site = installed_store.install(tmp_path / "site-packages")
    database = tmp_path / "acme.db"
    await put(f"sqlite:///{database}", make_record("a", "ann"), make_record("b"))
    command = [sys.executable, "-m", "asgi_sessions.cli", "stats", f"acme:///{database}"]

    done = await anyio.run_process(
        command, env={**os.environ, "PYTHONPATH": str(site)}, check=False
    )

    assert done.returncode == 0, done.stderr.decode()
    assert re.search(r"live sessions\s+2\n  of logged-in users\s+1\n", done.stdout.decode())


# help


ARGUMENTS = {
    "demo": ["--store", "--host", "--port"],
    "cleanup": ["STORE_URL", "--batch-size", "--pause-ratio"],
    "stats": ["STORE_URL"],
    "sessions": ["STORE_URL", "--user"],
    "revoke": ["STORE_URL", "--user", "--keep", "--yes"],
    "repair": ["STORE_URL", "--batch-size"],
    "migrate": ["FROM_URL", "TO_URL", "--yes"],
    "rekey": ["STORE_URL", "--keyring"],
}


def descriptions(help_text: str) -> dict[str, str]:
    """Each argument an argparse help text lists, with the text that describes it."""
    found: dict[str, str] = {}
    name, listing = "", False
    for line in help_text.splitlines():
        if line in ("positional arguments:", "options:"):
            listing = True
        elif not line.strip():
            listing = False
        elif listing and not line.startswith("   "):  # "  NAME  description"
            head, _, description = line.strip().partition("  ")
            name = head.split()[0].rstrip(",")
            found[name] = description.strip()
        elif listing:  # the description goes on, indented
            found[name] = f"{found[name]} {line.strip()}".strip()
    return found


async def test_the_help_lists_every_command_checked_here(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert await cli("--help") == 0

    listed = re.findall(r"^    (\w+)\s+\w", capsys.readouterr().out, re.MULTILINE)
    assert sorted(listed) == sorted(ARGUMENTS)


@pytest.mark.parametrize("command", ARGUMENTS)
async def test_command_help_describes_every_argument_and_shows_an_example_url(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli(command, "--help") == 0

    text = capsys.readouterr().out
    described = descriptions(text)
    assert set(described) == {"-h", *ARGUMENTS[command]}
    for argument in ARGUMENTS[command]:
        assert len(described[argument]) > 10, (argument, described[argument])
    examples = text.partition("\nexamples:\n")[2]
    assert re.search(rf"^  asgi-sessions {command} .*\b[a-z+]+://", examples, re.MULTILINE)


# failures and usage


@pytest.mark.parametrize(
    "url",
    ["nosuch://host/db", "sqlite:///", "postgresql://postgres@127.0.0.1:1/x"],
    ids=["unknown scheme", "no file", "unreachable server"],
)
async def test_a_store_that_cannot_be_used_fails_with_one_line(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli("stats", url) == 1

    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("asgi-sessions stats: ")
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("command", "after"),
    [
        ("cleanup", []),
        ("stats", []),
        ("sessions", ["--user", "ann"]),
        ("revoke", ["--user", "ann", "--yes"]),
        ("migrate", ["memory://"]),
    ],
)
async def test_a_command_never_creates_a_missing_database_file(
    tmp_path: Path, command: str, after: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "sesions.db"

    assert await cli(command, f"sqlite:///{missing}", *after) == 1

    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"asgi-sessions {command}: no such database file: {missing}\n"
    assert not await anyio.Path(missing).exists()


async def test_migrate_creates_its_destination_file(
    source: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await put(source, make_record("a"))
    destination = tmp_path / "moved.db"

    assert await cli("migrate", source, f"sqlite:///{destination}") == 0

    assert await anyio.Path(destination).exists()
    assert capsys.readouterr().out.endswith("1 copied, 0 replaced, 0 skipped\n")


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["stats"],
        ["sessions", "memory://"],
        ["cleanup", "memory://", "--batch-size", "0"],
        ["cleanup", "memory://", "--pause-ratio", "-1"],
        ["cleanup", "memory://", "--pause-ratio", "nan"],
    ],
)
async def test_bad_usage_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert await cli(*argv) == 2
    assert "usage: asgi-sessions" in capsys.readouterr().err


async def test_migrate_into_the_same_store_is_bad_usage(
    source: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli("migrate", source, source, "--yes") == 2
    assert "same store" in capsys.readouterr().err


SECRET = "S3cretPW"


def with_password(url: str) -> str:
    """``url`` with SECRET as the password of its user (ignored by a trusting server)."""
    parts = urlsplit(url)
    netloc = f"{parts.username or 'postgres'}:{SECRET}@{parts.netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.mark.parametrize(
    "url",
    [
        "postgresq://app:S3cretPW@host/db",
        "sqlite:///sessions.db?password=S3cretPW",
        "postgresql://app:S3cretPW@127.0.0.1:1/db",
        "redis://:S3cretPW@127.0.0.1:1/0",
    ],
    ids=["misspelled scheme", "sqlite password parameter", "postgres down", "redis down"],
)
async def test_a_failing_command_never_shows_a_password(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli("stats", url) == 1

    out, err = capsys.readouterr()
    assert err.startswith("asgi-sessions stats: ")
    assert SECRET not in out + err


async def test_migrate_names_both_stores_without_passwords(
    postgres_dsn: str,
    namespace: str,
    target: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = with_options(with_password(postgres_dsn), table_name=namespace)
    try:
        await put(source, make_record("a"))
        await put(target, make_record("other"))
        monkeypatch.setattr(sys, "stdin", Terminal("y\n"))

        assert await cli("migrate", target, source) == 0

        out, err = capsys.readouterr()
        assert "postgres:***@" in out
        assert "already holds 1 session" in out
        assert "1 copied" in out
        assert SECRET not in out + err
    finally:
        await remove_namespace(source)


async def test_demo_names_its_store_without_a_password(
    postgres_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    served: list[object] = []
    uvicorn = SimpleNamespace(run=lambda app, **_: served.append(app))
    monkeypatch.setitem(sys.modules, "uvicorn", uvicorn)

    assert await cli("demo", "--store", with_password(postgres_dsn)) == 0

    assert len(served) == 1
    out = capsys.readouterr().out
    assert ":***@" in out
    assert SECRET not in out


async def test_demo_without_uvicorn_prints_the_install_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if it were not installed

    assert await cli("demo") == 1

    assert "pip install 'asgi-server-sessions[cli]'" in capsys.readouterr().err


# the demo app, in-process


def visits(page: httpx.Response) -> int:
    found = re.search(r"viewed this page <strong>(\d+)</strong>", page.text)
    assert found, page.text
    return int(found.group(1))


def revocable_devices(page: httpx.Response) -> list[str]:
    return re.findall(r'name="device" value="([0-9a-f]{24})"', page.text)


@pytest.fixture
def demo_db(tmp_path: Path) -> Path:
    return tmp_path / "demo.db"


async def test_demo_logs_in_counts_lists_revokes_survives_restart_and_logs_out(
    demo_db: Path,
) -> None:
    async with SQLiteStore(demo_db) as store, browser(build_demo(store)) as laptop:
        assert "Log in" in (await laptop.get("/")).text
        page = await laptop.post("/login", data={"name": "alice"})
        assert "Hello alice" in page.text
        assert "Welcome, alice!" in page.text
        assert page.headers["cache-control"] == "no-store"
        assert visits(page) == 1
        assert visits(await laptop.get("/")) == 2

        async with browser(build_demo(store)) as phone:
            phone.headers["user-agent"] = "PhoneBrowser/3.1"
            await phone.post("/login", data={"name": "alice"})
            listing = await laptop.get("/devices")
            assert listing.text.count("<tr><td>") == 2
            assert listing.text.count("this device") == 1
            assert "PhoneBrowser/3.1" in listing.text and "127.0.0.1" in listing.text
            assert listing.headers["cache-control"] == "no-store"
            [phone_device] = revocable_devices(listing)

            after = await laptop.post("/devices/revoke", data={"device": phone_device})
            assert "Device signed out." in after.text
            assert revocable_devices(after) == []
            assert "Log in" in (await phone.get("/")).text
        await store.close()

    async with SQLiteStore(demo_db) as restarted, browser(build_demo(restarted)) as fresh:
        fresh.cookies = laptop.cookies  # same browser, new server process
        page = await fresh.get("/")
        assert "Hello alice" in page.text
        assert visits(page) == 3
        old_cookie = fresh.cookies["session"]

        page = await fresh.post("/logout")
        assert "You are logged out." in page.text
        assert "Log in" in page.text
        fresh.cookies.clear()
        fresh.cookies.set("session", old_cookie)
        page = await fresh.get("/")
        assert "Hello alice" not in page.text
        assert "Log in" in page.text


async def test_demo_revokes_only_devices_of_the_current_user(demo_db: Path) -> None:
    async with SQLiteStore(demo_db) as store, browser(build_demo(store)) as mallory:
        bobs = await create_session(store, user_id="bob")
        await mallory.post("/login", data={"name": "mallory"})

        bobs_device = device_id(tokens.key_for(bobs))
        page = await mallory.post("/devices/revoke", data={"device": bobs_device})

        assert "No such device of yours." in page.text
        assert await store.read(tokens.key_for(bobs)) is not None


async def test_demo_logs_out_the_other_devices_and_keeps_this_one(demo_db: Path) -> None:
    async with SQLiteStore(demo_db) as store, browser(build_demo(store)) as laptop:
        await laptop.post("/login", data={"name": "alice"})
        for _ in range(2):
            async with browser(build_demo(store)) as other:
                await other.post("/login", data={"name": "alice"})
        page = await laptop.post("/devices/revoke-others")
        assert "Signed out 2 other devices." in page.text
        assert page.text.count("<tr><td>") == 1
        assert "Log out other devices" not in page.text


async def test_demo_escapes_names_and_refuses_cross_site_forms(demo_db: Path) -> None:
    async with SQLiteStore(demo_db) as store, browser(build_demo(store)) as client:
        page = await client.post("/login", data={"name": "<b>x</b>"})
        assert "Hello &lt;b&gt;x&lt;/b&gt;" in page.text
        assert "<b>x</b>" not in page.text

        forged = await client.post("/logout", headers={"origin": "https://evil.example"})
        assert forged.status_code == 403
        assert "Hello &lt;b&gt;" in (await client.get("/")).text


async def test_demo_asks_again_for_an_empty_name(demo_db: Path) -> None:
    async with SQLiteStore(demo_db) as store, browser(build_demo(store)) as client:
        page = await client.post("/login", data={"name": "   "})
        assert "Please enter a name" in page.text
        assert "Log in" in page.text
        assert await store.count() == 1  # only the flash, in an anonymous session


# the demo as a real server


async def test_demo_server_keeps_users_logged_in_across_a_restart(demo_db: Path) -> None:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base_url, follow_redirects=True) as client:
        with demo_process(demo_db, port) as first:
            await wait_until_serving(client, first)
            assert "Hello alice" in (await client.post("/login", data={"name": "alice"})).text
            first.kill()  # not even a clean shutdown
            first.wait()

        with demo_process(demo_db, port) as second:
            await wait_until_serving(client, second)
            page = await client.get("/")
            assert "Hello alice" in page.text
            assert visits(page) == 2

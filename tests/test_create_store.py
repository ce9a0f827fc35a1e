"""create_store(url): the one place a URL becomes a store."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Self

import installed_store
import pytest

from asgi_sessions import SessionRecord, SessionStore, create_store, register_store
from asgi_sessions.stores import (
    MemoryStore,
    PostgresStore,
    RedisStore,
    SQLiteStore,
    redact_url,
)

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def test_memory_and_sqlite_urls(tmp_path: Path) -> None:
    assert isinstance(create_store("memory://"), MemoryStore)
    store = create_store(f"sqlite:///{tmp_path}/s.db?table_name=web&create_table=false")
    assert isinstance(store, SQLiteStore)
    assert (store.path, store.table_name, store.create_table) == (
        f"{tmp_path}/s.db",
        "web",
        False,
    )


def test_store_options_leave_driver_parameters_in_the_url() -> None:
    store = create_store(
        "postgresql://postgres@127.0.0.1/test?table_name=web&command_timeout=1.5"
        "&application_name=app"
    )
    assert isinstance(store, PostgresStore)
    assert store.table_name == "web"
    assert store.command_timeout == 1.5
    assert store.dsn == "postgresql://postgres@127.0.0.1/test?application_name=app"


def test_keyword_options_win_over_the_query(tmp_path: Path) -> None:
    store = create_store(f"sqlite:///{tmp_path}/s.db?table_name=web", table_name="api")
    assert isinstance(store, SQLiteStore)
    assert store.table_name == "api"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://db/app", "unknown session store URL 'mysql://db/app': expected one of"),
        ("sqlite:///s.db?create_table=maybe", "create_table='maybe' must be true or false"),
        ("postgresql://db/app?command_timeout=soon", "must be a number"),
    ],
)
def test_bad_urls_say_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create_store(url)


@pytest.mark.parametrize(
    ("url", "unknown", "closest", "listed"),
    [
        ("redis://cache:6379/0?prefx=app:", "prefx", "prefix", ["prefix", "db", "ssl_cert_reqs"]),
        (
            "postgresql://postgres@127.0.0.1/test?table_nam=web",
            "table_nam",
            "table_name",
            ["table_name", "command_timeout", "sslmode", "application_name"],
        ),
        ("postgresql://db/app?ssl_mode=require", "ssl_mode", "sslmode", ["sslmode"]),
        ("sqlite:///s.db?tabel_name=web", "tabel_name", "table_name", ["create_table", "timeout"]),
    ],
)
def test_an_unknown_query_option_is_refused_at_once_with_the_closest_match(
    url: str, unknown: str, closest: str, listed: list[str]
) -> None:
    with pytest.raises(ValueError, match=f"unknown option '{unknown}'") as refused:
        create_store(url)
    message = str(refused.value)
    assert f"did you mean '{closest}'?" in message
    for name in listed:
        assert re.search(rf"\b{name}\b", message), name


def test_an_option_nothing_resembles_is_refused_without_a_guess() -> None:
    with pytest.raises(ValueError, match=r"unknown option 'zzz'.*MemoryStore options: \(none\)"):
        create_store("memory://?zzz=1")


def test_objects_are_not_options_a_query_can_set() -> None:
    for name in ("clock", "pool"):
        with pytest.raises(ValueError, match=f"unknown option '{name}'"):
            create_store(f"postgresql://db/app?{name}=x")


def test_driver_parameters_the_store_declares_reach_the_driver(
    postgres_dsn: str, redis_url: str, namespace: str
) -> None:
    store = create_store(f"{postgres_dsn}?sslmode=disable&table_name={namespace}")
    assert isinstance(store, PostgresStore)
    assert store.dsn == f"{postgres_dsn}?sslmode=disable"
    assert isinstance(create_store(f"{redis_url}?db=1&client_name=app"), RedisStore)


@pytest.mark.anyio
async def test_a_redis_store_works_with_the_driver_parameters_it_passes_on(
    redis_url: str, namespace: str
) -> None:
    record = SessionRecord("a" * 64, b"{}", "ann", NOW, NOW + timedelta(hours=1))
    url = f"{redis_url}?db=0&client_name={namespace}&health_check_interval=30&prefix={namespace}:"
    async with create_store(url, clock=lambda: NOW) as store:
        await store.create(record)
        assert await store.read(record.key) == record
        await store.clear()


def test_tls_parameters_need_a_tls_redis_url() -> None:
    with pytest.raises(ValueError, match=r"ssl_cert_reqs .* applies to TLS connections only"):
        create_store("redis://cache:6379/0?ssl_cert_reqs=none")
    assert isinstance(create_store("rediss://cache:6379/0?ssl_cert_reqs=none"), RedisStore)


# stores of other packages


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The acme store package, installed on sys.path for this test only."""
    root = installed_store.install(tmp_path / "site-packages")
    monkeypatch.syspath_prepend(str(root))
    yield root
    sys.modules.pop(installed_store.MODULE, None)


def test_an_installed_store_is_built_from_its_url_scheme(installed: Path, tmp_path: Path) -> None:
    store = create_store(f"acme:///{tmp_path}/a.db?flavour=mint&table_name=web")

    assert type(store).__module__ == installed_store.MODULE
    assert isinstance(store, SQLiteStore)
    assert (store.path, store.table_name) == (f"{tmp_path}/a.db", "web")
    assert vars(store)["flavour"] == "mint"  # a driver parameter the class declares


def test_an_installed_store_refuses_what_it_does_not_declare(installed: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown option 'flavor'.*did you mean 'flavour'"):
        create_store("acme:///a.db?flavor=mint")


def test_an_unknown_scheme_lists_installed_schemes_too(installed: Path) -> None:
    with pytest.raises(ValueError, match=r"expected one of memory://, .*, acme://"):
        create_store("acne:///a.db")


def test_an_installed_store_that_cannot_be_imported_says_where_it_comes_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = tmp_path / "broken-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[asgi_sessions.stores]\nbroken = no_such_mod:Store\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    with pytest.raises(ImportError, match=r"broken://, no_such_mod:Store \(entry point"):
        create_store("broken://x")


class ShelfStore(MemoryStore):
    """A store an application registers for itself."""

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        return cls(**options)


def test_a_registered_store_is_built_from_its_url_scheme(namespace: str) -> None:
    scheme = f"shelf-{namespace.replace('_', '-')}"
    register_store(scheme, ShelfStore)
    register_store(scheme.upper(), ShelfStore)  # the same class again: nothing changes

    assert type(create_store(f"{scheme}://")) is ShelfStore
    with pytest.raises(ValueError, match="already registered to ShelfStore"):
        register_store(scheme, MemoryStore)


@pytest.mark.parametrize(
    ("scheme", "store_class", "error", "message"),
    [
        ("redis", ShelfStore, ValueError, r"redis:// is built in \(RedisStore\)"),
        ("no scheme", ShelfStore, ValueError, "is not a URL scheme"),
        ("shelf", dict, TypeError, "needs a SessionStore subclass"),
    ],
)
def test_register_store_refuses_what_would_not_work(
    scheme: str, store_class: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        register_store(scheme, store_class)


# passwords never appear in a message

SECRET = "S3cretPW"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:S3cretPW@db/app", "postgresql://app:***@db/app"),
        ("redis://:S3cretPW@cache:6379/0", "redis://:***@cache:6379/0"),
        ("postgresql://app:S3cr/etPW@db/app", "postgresql://app:***@db/app"),
        (
            "sqlite:////var/s.db?password=S3cretPW&table_name=web",
            "sqlite:////var/s.db?password=***&table_name=web",
        ),
        (
            "postgresql://app@db/app?sslpassword=S3cretPW&passwd=S3cretPW&pwd=S3cretPW"
            "&client_secret=S3cretPW&access_token=S3cretPW&sslkey=S3cretPW",
            "postgresql://app@db/app?sslpassword=***&passwd=***&pwd=***"
            "&client_secret=***&access_token=***&sslkey=***",
        ),
        ("sqlite:///relative@dir/s.db", "sqlite:///relative@dir/s.db"),
        ("redis://cache:6379/0?prefix=app:", "redis://cache:6379/0?prefix=app:"),
    ],
)
def test_redact_url_hides_passwords_and_secret_parameters_only(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("build", "url"),
    [
        (create_store, "postgresq://app:S3cretPW@db/app"),
        (create_store, "sqlite:///s.db?password=S3cretPW"),
        (create_store, "memory://app:S3cretPW@host"),
        (SQLiteStore.from_url, "sqlite://app:S3cretPW@host/s.db"),
        (SQLiteStore.from_url, "sqlite:///s.db?password=S3cretPW"),
        (PostgresStore.from_url, "mysql://app:S3cretPW@db/app"),
        (RedisStore.from_url, "http://:S3cretPW@cache:6379/0"),
        (MemoryStore.from_url, "memory://app:S3cretPW@host?token=S3cretPW"),
    ],
)
def test_a_refused_url_is_shown_without_its_password(
    build: Callable[[str], SessionStore], url: str
) -> None:
    with pytest.raises(ValueError, match=r"\*\*\*") as refused:
        build(url)
    assert SECRET not in str(refused.value)

"""create_store(url): the one place a URL becomes a store."""

from __future__ import annotations

from pathlib import Path

import pytest

from asgi_sessions import create_store
from asgi_sessions.stores import MemoryStore, PostgresStore, SQLiteStore


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

"""Both conformance suites on SQLiteStore, one fresh database file per test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from asgi_sessions.stores.base import Clock, SessionStore
from asgi_sessions.stores.sqlite import SQLiteStore
from asgi_sessions.testing import MiddlewareConformance, StoreConformance


class SQLiteStores:
    @pytest.fixture
    def make_store(self, tmp_path: Path, namespace: str) -> Callable[[Clock], SessionStore]:
        path = tmp_path / f"{namespace}.db"
        return lambda clock: SQLiteStore(path, clock=clock)


class TestSQLiteStore(SQLiteStores, StoreConformance):
    @pytest.fixture
    def make_unavailable_store(self, tmp_path: Path) -> Callable[[Clock], SessionStore]:
        path = tmp_path / "no-such-directory" / "sessions.db"
        return lambda clock: SQLiteStore(path, clock=clock)


class TestSQLiteMiddleware(SQLiteStores, MiddlewareConformance):
    pass

"""The session table as SQLAlchemy sees it, and the SQL the store needs on every dialect.

Kept apart from the store so Alembic users (and tests) can define the same table in a
``MetaData`` of their own with ``session_table``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Dialect,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import FunctionElement
from sqlalchemy.types import TypeDecorator, TypeEngine

from asgi_sessions.stores.base import MAX_DEVICE_TEXT

__all__ = ["MYSQL", "server_micros", "session_table"]

MYSQL = ("mysql", "mariadb")
"""The dialect names of MySQL and MariaDB."""


class _Text(TypeDecorator[str]):
    """Text compared byte for byte on every dialect.

    MySQL's text collations fold case and ignore trailing spaces, so users ``Ada`` and
    ``ada `` would share sessions there: on MySQL/MariaDB the value is kept as UTF-8 in
    a ``VARBINARY``. A string UTF-8 cannot encode (a lone surrogate) is a ValueError.
    """

    impl = String
    cache_ok = True

    def __init__(self, length: int) -> None:
        super().__init__()
        self.length = length

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in MYSQL:
            return dialect.type_descriptor(mysql.VARBINARY(self.length))
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: str | None, dialect: Dialect) -> Any:
        if value is not None and dialect.name in MYSQL:
            return value.encode()
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        if isinstance(value, bytes | bytearray):
            return bytes(value).decode()
        result: str | None = value
        return result


class server_micros(FunctionElement[int]):  # noqa: N801 - SQL functions are lower case
    """The database server's own current time, in microseconds since the epoch."""

    type = BigInteger()
    name = "server_micros"
    inherit_cache = True


@compiles(server_micros)
def _sqlite_micros(element: server_micros, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite runs in this process: its "server clock" is this host's (to the millisecond).
    return "CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)"


@compiles(server_micros, "postgresql")
def _postgres_micros(element: server_micros, compiler: SQLCompiler, **kw: Any) -> str:
    return "CAST(EXTRACT(EPOCH FROM statement_timestamp()) * 1000000 AS BIGINT)"


@compiles(server_micros, "mysql")
@compiles(server_micros, "mariadb")
def _mysql_micros(element: server_micros, compiler: SQLCompiler, **kw: Any) -> str:
    return "CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)"


def _index_name(table_name: str, column: str) -> str:
    """``ix_<table>_<column>``, shortened with a digest to fit every dialect's 63 characters."""
    name = f"ix_{table_name}_{column}"
    if len(name) <= 63:
        return name
    return f"ix_{hashlib.sha256(table_name.encode()).hexdigest()[:16]}_{column}"


def session_table(
    metadata: MetaData, table_name: str = "sessions", schema: str | None = None
) -> Table:
    """Define the sessions table in ``metadata``: what the store creates, and what Alembic sees.

    ``expires_at`` is indexed for cleanup, ``(user_id, created_at)`` for listing and
    revoking a user's sessions oldest first.
    """
    return Table(
        table_name,
        metadata,
        Column("key", _Text(255), primary_key=True),
        Column(
            "data",
            LargeBinary().with_variant(mysql.LONGBLOB(), *MYSQL),
            nullable=False,
        ),
        Column("user_id", _Text(1024)),
        Column("created_at", BigInteger, nullable=False),
        Column("expires_at", BigInteger, nullable=False),
        Column("version", BigInteger, nullable=False),
        Column("user_agent", _Text(4 * MAX_DEVICE_TEXT)),
        Column("ip", _Text(4 * MAX_DEVICE_TEXT)),
        Column("last_seen_at", BigInteger),
        Index(_index_name(table_name, "expires_at"), "expires_at"),
        Index(_index_name(table_name, "user_id"), "user_id", "created_at"),
        schema=schema,
    )

"""A third-party store package, installed into a directory the way pip would lay it out.

``install(root)`` writes ``acme_sessions`` (a store for ``acme:///path.db`` URLs, kept in
SQLite) and its ``*.dist-info`` with an ``entry_points.txt`` naming it in the
``asgi_sessions.stores`` group. Put ``root`` on ``sys.path`` (or ``PYTHONPATH``) and the
store is installed: nothing in asgi_sessions names it.
"""

from __future__ import annotations

from pathlib import Path

SCHEME = "acme"
MODULE = "acme_sessions"

_SOURCE = '''
"""An installed store: SQLite under its own URL scheme, with a driver parameter."""

from typing import Any, ClassVar, Self
from urllib.parse import parse_qsl

from asgi_sessions.stores import SQLiteStore, redact_url


class AcmeStore(SQLiteStore):
    driver_url_parameters: ClassVar[frozenset[str]] = frozenset({"flavour"})

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        base, _, query = url.partition("?")
        if not base.startswith("acme:///"):
            raise ValueError(f"AcmeStore needs acme:///path.db, got {redact_url(url)!r}")
        store = cls(base.removeprefix("acme:///"), **options)
        store.flavour = dict(parse_qsl(query)).get("flavour", "plain")
        return store
'''


def install(root: Path) -> Path:
    """Write the package and its metadata under ``root``; return ``root``."""
    (root / MODULE).mkdir(parents=True)
    (root / MODULE / "__init__.py").write_text(_SOURCE)
    info = root / "acme_sessions-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-sessions\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[asgi_sessions.stores]\n{SCHEME} = {MODULE}:AcmeStore\n"
    )
    return root

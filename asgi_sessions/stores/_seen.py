"""The keys a scan has already returned, exactly, in bounded memory.

Redis's SCAN may return a key twice (while it resizes its table), so a store that
streams every record must remember what it has yielded. A set of a million names
would take over a hundred megabytes; ``SeenKeys`` keeps the first ``IN_MEMORY``
digests in a set, then spills them to a temporary SQLite file (32 bytes a key, with
its index, on disk), so memory stays flat however many keys there are.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

__all__ = ["IN_MEMORY", "SeenKeys", "seen_keys"]

IN_MEMORY = 50_000
"""Digests kept in memory before the rest go to a temporary file."""


class SeenKeys:
    """Which 64-hex-digit keys were seen already; exact, never a guess."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._memory: set[bytes] = set()
        self._disk: sqlite3.Connection | None = None

    def fresh(self, keys: Sequence[str]) -> list[str]:
        """The keys of ``keys`` not seen before (each once), now remembered."""
        new: dict[bytes, str] = {}
        for key in keys:
            digest = bytes.fromhex(key)
            if digest not in self._memory and digest not in new:
                new[digest] = key
        if self._disk is None and len(self._memory) + len(new) > IN_MEMORY:
            self._spill()
        if self._disk is None:
            self._memory.update(new)
            return list(new.values())
        if new:
            marks = ",".join("?" * len(new))
            query = f"SELECT digest FROM seen WHERE digest IN ({marks})"  # noqa: S608 - marks only
            for (found,) in self._disk.execute(query, list(new)):
                del new[found]
            self._disk.executemany("INSERT INTO seen VALUES (?)", [(d,) for d in new])
        return list(new.values())

    def _spill(self) -> None:
        self._disk = sqlite3.connect(self._directory / "seen.db", isolation_level=None)
        self._disk.execute("PRAGMA journal_mode = OFF")
        self._disk.execute("PRAGMA synchronous = OFF")
        self._disk.execute("CREATE TABLE seen (digest BLOB PRIMARY KEY) WITHOUT ROWID")
        self._disk.executemany("INSERT INTO seen VALUES (?)", [(d,) for d in self._memory])
        self._memory.clear()

    def close(self) -> None:
        if self._disk is not None:
            self._disk.close()


@contextmanager
def seen_keys() -> Iterator[SeenKeys]:
    """A SeenKeys whose file, if it needed one, is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="asgi-sessions-seen-") as directory:
        seen = SeenKeys(Path(directory))
        try:
            yield seen
        finally:
            seen.close()

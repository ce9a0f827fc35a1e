"""SeenKeys: exact across the spill from memory to its temporary file."""

from __future__ import annotations

import hashlib

import pytest

from asgi_sessions.stores import _seen
from asgi_sessions.stores._seen import seen_keys


def key(n: int) -> str:
    return hashlib.sha256(b"%d" % n).hexdigest()


def test_each_key_is_fresh_once_before_and_after_the_spill(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_seen, "IN_MEMORY", 10)
    with seen_keys() as seen:
        assert seen.fresh([key(n) for n in (1, 2, 2, 3)]) == [key(1), key(2), key(3)]
        first_spill = seen.fresh([key(n) for n in range(12)])  # past IN_MEMORY: to disk
        assert first_spill == [key(n) for n in (0, *range(4, 12))]
        assert seen._disk is not None
        assert seen.fresh([key(n) for n in range(15)]) == [key(n) for n in range(12, 15)]
        assert seen.fresh([key(3), key(3), key(20)]) == [key(20)]
        assert seen.fresh([]) == []


def test_the_file_goes_with_the_context(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_seen, "IN_MEMORY", 1)
    with seen_keys() as seen:
        seen.fresh([key(1), key(2)])
        directory = seen._directory
        assert (directory / "seen.db").exists()
    assert not directory.exists()

"""Merging one request's changes into a session another request saved meanwhile.

Two requests of one browser often overlap. When a commit finds the stored record
changed since it was loaded, the keys this request set or deleted (compared with
what it loaded) are applied to the fresh data; keys it did not touch keep the other
request's values. Pure functions: the caller decides what to do with the result.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Changes", "changes", "merged"]


@dataclass(frozen=True, slots=True)
class Changes:
    """What one request did to the data and the user link, compared with what it loaded."""

    set: Mapping[str, Any]
    """Keys added or given a new value, with that value."""
    deleted: frozenset[str]
    """Keys that were loaded and are gone now."""
    user_id: str | None
    """The user link now."""
    user_changed: bool
    """Whether the request changed the user link."""


def changes(
    loaded: Mapping[str, Any],
    current: Mapping[str, Any],
    loaded_user: str | None,
    current_user: str | None,
    same: Callable[[Any, Any], bool],
) -> Changes:
    """What ``current`` changed relative to ``loaded``; ``same`` compares two values as
    stored (two values are the same when they would be stored alike)."""
    changed = {
        key: value
        for key, value in current.items()
        if key not in loaded or not same(value, loaded[key])
    }
    return Changes(
        changed,
        frozenset(loaded.keys() - current.keys()),
        current_user,
        current_user != loaded_user,
    )


def merged(
    fresh: Mapping[str, Any], fresh_user: str | None, changes: Changes
) -> tuple[dict[str, Any], str | None]:
    """The fresh data and user link with ``changes`` applied on top."""
    data = dict(fresh)
    data.update(changes.set)
    for key in changes.deleted:
        data.pop(key, None)
    return data, changes.user_id if changes.user_changed else fresh_user

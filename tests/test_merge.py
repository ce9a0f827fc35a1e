"""Merging one request's changes into data another request saved meanwhile."""

from __future__ import annotations

from typing import Any

from asgi_sessions.merge import changes, merged


def same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def test_keys_set_and_deleted_by_this_request_win_and_others_keep_the_fresh_values() -> None:
    loaded = {"cart": [1], "theme": "light", "gone": 1, "kept": True}
    current = {"cart": [1, 2], "theme": "light", "kept": True, "new": "x"}
    fresh = {"cart": [1], "theme": "dark", "gone": 1, "kept": True, "other": 5}
    diff = changes(loaded, current, "ann", "ann", same)
    data, user = merged(fresh, "ann", diff)
    assert data == {"cart": [1, 2], "theme": "dark", "kept": True, "new": "x", "other": 5}
    assert user == "ann"


def test_a_value_that_compares_equal_but_is_stored_differently_counts_as_changed() -> None:
    diff = changes({"n": 1}, {"n": 1.0}, None, None, same)
    assert dict(diff.set) == {"n": 1.0}


def test_the_user_link_follows_the_request_only_if_it_changed_it() -> None:
    untouched = changes({}, {}, "ann", "ann", same)
    assert merged({}, "bob", untouched) == ({}, "bob")
    logged_out = changes({}, {}, "ann", None, same)
    assert merged({}, "bob", logged_out) == ({}, None)


def test_merging_does_not_modify_its_inputs() -> None:
    fresh = {"a": 1}
    diff = changes({}, {"b": 2}, None, None, same)
    data, _ = merged(fresh, None, diff)
    assert fresh == {"a": 1} and data == {"a": 1, "b": 2}

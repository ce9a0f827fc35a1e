"""The JSON serializer keeps data exactly or refuses it, naming where the problem is."""

from __future__ import annotations

from typing import Any

import pytest

from asgi_sessions import JSONSerializer
from asgi_sessions.exceptions import CorruptSession, UnserializableValue

EXACT = {
    "text": "héllo ✓ \x00 nul",
    "n": 1.5,
    "negative zero": -0.0,
    "big": 10**40,
    "tiny": 5e-324,
    "huge": 1e308,
    "flags": [True, False, None],
    "nested": {"list": [{"deep": [1, 2, {"x": "y"}]}]},
    "quotes": "'; DROP TABLE sessions; --",
    "redis": "{tag} * ? [x] :",
}


def test_plain_json_data_round_trips_exactly() -> None:
    serializer = JSONSerializer()
    back = serializer.loads(serializer.dumps(EXACT))
    assert back == EXACT
    assert repr(back) == repr(EXACT)  # -0.0 stays negative, ints stay ints


class Node:
    pass


def cycle() -> dict[str, Any]:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    return {"a": loop}


@pytest.mark.parametrize(
    ("data", "path", "why"),
    [
        ({"a": {1: "x", "1": "y"}}, "a.1", "key 1 is of type int"),
        ({"a": {None: 1}}, "a.None", "key None is of type NoneType"),
        ({3: "x"}, "3", "key 3 is of type int"),
        ({"a": [0, {"b": {(1, 2): 0}}]}, "a.1.b.(1, 2)", "of type tuple"),
        ({"a": float("nan")}, "a", "nan is not a JSON number"),
        ({"a": [1, float("inf")]}, "a.1", "inf is not a JSON number"),
        ({"a": {"b": -float("inf")}}, "a.b", "-inf is not a JSON number"),
        ({"pos": (1, 2)}, "pos", "a tuple would come back as a list"),
        ({"s": {1, 2}}, "s", "type set has no exact JSON form"),
        ({"b": b"bytes"}, "b", "type bytes has no exact JSON form"),
        ({"o": [Node()]}, "o.0", "type Node has no exact JSON form"),
        ({"t": "\ud800"}, "t", "lone surrogate"),
        (cycle(), "a.self", "reference cycle"),
    ],
)
def test_what_json_would_change_or_refuse_is_refused_naming_its_path(
    data: dict[Any, Any], path: str, why: str
) -> None:
    with pytest.raises(UnserializableValue) as caught:
        JSONSerializer().dumps(data)
    message = str(caught.value)
    assert f"at {path!r}" in message
    assert why in message


def test_deep_nesting_is_refused_not_a_crash() -> None:
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(UnserializableValue, match="nested too deeply"):
        JSONSerializer().dumps({"deep": deep})


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"\xff\xfe", b'"text"', b"NaN"])
def test_unreadable_records_are_corrupt_sessions(raw: bytes) -> None:
    with pytest.raises(CorruptSession):
        JSONSerializer().loads(raw)

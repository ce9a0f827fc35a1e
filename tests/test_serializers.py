"""The JSON serializer keeps data exactly or refuses it, naming where the problem is."""

from __future__ import annotations

import json
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


def test_the_bytes_are_those_json_dumps_writes() -> None:
    """Records written before stay byte for byte what this version writes, so an
    unchanged session is never taken for a changed one."""
    expected = json.dumps(EXACT, separators=(",", ":"), ensure_ascii=False).encode()
    assert JSONSerializer().dumps(EXACT) == expected


class Node:
    pass


def cycle() -> dict[str, Any]:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    return {"a": loop}


REFUSED = pytest.mark.parametrize(
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
"""Data JSON would change or cannot hold, the path of the problem, and why."""


@REFUSED
def test_what_json_would_change_or_refuse_is_refused_naming_its_path(
    data: dict[Any, Any], path: str, why: str
) -> None:
    with pytest.raises(UnserializableValue) as caught:
        JSONSerializer().dumps(data)
    message = str(caught.value)
    assert f"at {path!r}" in message
    assert why in message


@REFUSED
def test_what_dumps_refuses_is_refused_against_previous_bytes_too(
    data: dict[Any, Any], path: str, why: str
) -> None:
    serializer = JSONSerializer()
    with pytest.raises(UnserializableValue) as caught:
        serializer.dumps_against(data, serializer.dumps({"a": 1}))
    message = str(caught.value)
    assert f"at {path!r}" in message
    assert why in message


def test_against_the_bytes_it_was_read_from_unchanged_data_gives_them_back() -> None:
    serializer = JSONSerializer()
    stored = bytes(bytearray(serializer.dumps(EXACT)))  # an object of its own
    assert serializer.dumps_against(serializer.loads(stored), stored) is stored
    changed = {**EXACT, "n": 2.5}
    assert serializer.dumps_against(changed, stored) == serializer.dumps(changed)


def test_deep_nesting_is_refused_not_a_crash() -> None:
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(UnserializableValue, match="nested too deeply"):
        JSONSerializer().dumps({"deep": deep})


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"[1, 2]", b"\xff\xfe", b'"text"', b"NaN", b'{"a":1}x', b'{"a":1', b"{\xff}"],
)
def test_unreadable_records_are_corrupt_sessions(raw: bytes) -> None:
    with pytest.raises(CorruptSession):
        JSONSerializer().loads(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a":1}',
        b' {"a": [1, 2.5, "x"]} \n',
        b'{"a":1}  ',
        '\ufeff{"bom":true}'.encode("utf-8"),
        '{"wide":"\u00e9"}'.encode("utf-16"),
        '{"le":1}'.encode("utf-16-le"),
        b'{"s":"\xed\xa0\x80"}',  # a surrogate written by another program
    ],
)
def test_records_read_as_json_loads_reads_them(raw: bytes) -> None:
    assert JSONSerializer().loads(raw) == json.loads(raw)

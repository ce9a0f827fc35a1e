"""Turning session data into bytes and back. JSON by default; pickle never.

A serializer either stores data exactly or refuses it: what the next request reads
back equals what this one wrote, or ``dumps`` raised ``UnserializableValue``
naming where in the data the problem is.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Protocol

from asgi_sessions.exceptions import CorruptSession, UnserializableValue

__all__ = ["JSONSerializer", "Serializer"]


class Serializer(Protocol):
    """What the middleware needs to store a session's data as bytes."""

    def dumps(self, data: Mapping[str, Any]) -> bytes:
        """Serialize ``data`` so that ``loads`` gives back an equal dict; otherwise raise
        UnserializableValue naming the path of the offending value."""
        ...

    def loads(self, raw: bytes) -> dict[str, Any]:
        """Deserialize ``raw``; raise CorruptSession if it is not a session."""
        ...


class JSONSerializer:
    """Compact UTF-8 JSON that round-trips exactly.

    Keys must be strings at every depth and values JSON's own types: str, int,
    float (finite), bool, None, list and dict. Anything JSON would silently change
    (a tuple into a list, the key ``1`` into ``"1"``, NaN into non-standard JSON)
    is refused instead.
    """

    def __init__(self) -> None:
        self._encoder = json.JSONEncoder(
            separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
        self._decoder = json.JSONDecoder()

    def dumps(self, data: Mapping[str, Any]) -> bytes:
        try:
            raw = self._encoder.encode(data).encode("utf-8")
            exact = self._decoder.decode(raw.decode("utf-8")) == data
        except (TypeError, ValueError, RecursionError) as exc:
            raise UnserializableValue(_explain(data, exc)) from exc
        if not exact:
            raise UnserializableValue(_explain(data, None))
        return raw

    def quick_dumps(self, data: Mapping[str, Any]) -> bytes:
        """Serialize without the round-trip check: to tell whether data changed at all."""
        return self._encoder.encode(data).encode("utf-8")

    def loads(self, raw: bytes) -> dict[str, Any]:
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
            raise CorruptSession(f"stored session is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise CorruptSession(f"stored session is a JSON {type(data).__name__}, not an object")
        return data


_ADVICE = "store plain JSON data: str, int, finite float, bool, None, list, and dict with str keys"


def _explain(data: Mapping[str, Any], exc: Exception | None) -> str:
    """Say where in ``data`` the first value JSON cannot keep exactly is, and why."""
    try:
        found = _first_problem(data, "", set())
    except RecursionError:
        found = None
    if found is not None:
        path, problem = found
        return f"session value at {path!r} cannot be stored: {problem}; {_ADVICE}"
    if isinstance(exc, RecursionError):
        return f"session data is nested too deeply to store; {_ADVICE}"
    if exc is None:
        return f"session data would not read back equal from JSON; {_ADVICE}"
    return f"session data cannot be stored as JSON ({exc}); {_ADVICE}"


def _first_problem(value: Any, path: str, seen: set[int]) -> tuple[str, str] | None:
    """The dotted path of the first value JSON would refuse or change, and the reason."""
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else (path, f"{value!r} is not a JSON number")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path, "the text holds a lone surrogate, which UTF-8 cannot encode"
        return None
    if id(value) in seen:
        return path, "it contains itself (a reference cycle)"
    if isinstance(value, dict):
        seen.add(id(value))
        for key, item in value.items():
            if not isinstance(key, str):
                where = f"{path}.{key}" if path else str(key)
                return where, f"the key {key!r} is of type {type(key).__name__}, not str"
            found = _first_problem(item, f"{path}.{key}" if path else key, seen)
            if found is not None:
                return found
        return None
    if isinstance(value, list):
        seen.add(id(value))
        for index, item in enumerate(value):
            found = _first_problem(item, f"{path}.{index}" if path else str(index), seen)
            if found is not None:
                return found
        return None
    kind = type(value).__name__
    if isinstance(value, tuple):
        return path, "a tuple would come back as a list; store a list"
    return path, f"a value of type {kind} has no exact JSON form"

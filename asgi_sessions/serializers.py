"""Turning session data into bytes and back. JSON by default; pickle never."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

from asgi_sessions.exceptions import CorruptSession, UnserializableValue


class Serializer(Protocol):
    """What the middleware needs to store a session's data as bytes."""

    def dumps(self, data: Mapping[str, Any]) -> bytes:
        """Serialize ``data``; raise UnserializableValue naming the offending key."""
        ...

    def loads(self, raw: bytes) -> dict[str, Any]:
        """Deserialize ``raw``; raise CorruptSession if it is not a session."""
        ...


class JSONSerializer:
    """Compact UTF-8 JSON. Keys must be strings; values any JSON value."""

    def __init__(self) -> None:
        self._encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)

    def dumps(self, data: Mapping[str, Any]) -> bytes:
        try:
            if not all(isinstance(key, str) for key in data):
                raise TypeError("keys must be str")  # JSON would silently turn 3 into "3"
            return self._encoder.encode(data).encode("utf-8")
        except (TypeError, ValueError, RecursionError) as exc:
            raise UnserializableValue(_explain(self._encoder, data, exc)) from exc

    def loads(self, raw: bytes) -> dict[str, Any]:
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
            raise CorruptSession(f"stored session is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise CorruptSession(f"stored session is a JSON {type(data).__name__}, not an object")
        return data


def _explain(encoder: json.JSONEncoder, data: Mapping[str, Any], exc: Exception) -> str:
    """Name the first key whose value the encoder rejects."""
    for key, value in data.items():
        if not isinstance(key, str):
            return f"session key {key!r} is a {type(key).__name__}; session keys must be str"
        try:
            encoder.encode(value)
        except (TypeError, ValueError, RecursionError) as inner:
            return (
                f"session[{key!r}] cannot be stored as JSON ({inner}); "
                "store plain data such as str, int, float, bool, None, list or dict"
            )
    return f"session data cannot be stored as JSON: {exc}"

"""Turning session data into bytes and back. JSON by default; pickle never.

A serializer either stores data exactly or refuses it: what the next request reads
back equals what this one wrote, or ``dumps`` raised ``UnserializableValue``
naming where in the data the problem is.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from asgi_sessions.exceptions import CorruptSession, UnserializableValue

try:
    from _json import make_encoder as _make_c_encoder
except ImportError:  # an interpreter without json's C accelerator
    _make_c_encoder = None  # type: ignore[assignment, misc]

__all__ = ["JSONSerializer", "Serializer"]


class Serializer(Protocol):
    """What the middleware needs to store a session's data as bytes.

    A serializer may also offer ``dumps_against(data, previous) -> bytes``: ``dumps``,
    except that it returns ``previous`` itself when ``data`` serializes to exactly those
    bytes. A session read and left unchanged then costs one encoding and no round-trip
    check. ``JSONSerializer`` has it.
    """

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
        self._chunks = _c_encoder(self._encoder)
        """The C encoder behind ``self._encoder.encode``, made once rather than per call."""
        self._decoder = json.JSONDecoder()
        self._scan: Callable[[str, int], tuple[Any, int]] = (
            self._decoder.scan_once  # type: ignore[attr-defined]
        )
        """The decoder's own scanner, called without ``decode``'s wrapping around each call."""
        self._own_bytes = type(self).dumps is not JSONSerializer.dumps

    def dumps(self, data: Mapping[str, Any]) -> bytes:
        text, raw = self._encoded(data)
        return self._exact(data, text, raw)

    def dumps_against(self, data: Mapping[str, Any], previous: bytes) -> bytes:
        """Serialize ``data`` as ``dumps`` does, but return ``previous`` (bytes that were
        read back) as it is when ``data`` serializes to exactly those bytes: it is
        unchanged, nothing will be written, so the round-trip check has nothing to protect.
        """
        if self._own_bytes:  # a subclass's dumps makes its own bytes: compare with those
            raw = self.dumps(data)
            return previous if raw == previous else raw
        text, raw = self._encoded(data)
        return previous if raw == previous else self._exact(data, text, raw)

    def _encoded(self, data: Mapping[str, Any]) -> tuple[str, bytes]:
        try:
            if self._chunks is None:
                text = self._encoder.encode(data)
            else:
                text = "".join(self._chunks(data, 0))
            return text, text.encode("utf-8")
        except (TypeError, ValueError, RecursionError) as exc:
            raise UnserializableValue(_explain(data, exc)) from exc

    def _exact(self, data: Mapping[str, Any], text: str, raw: bytes) -> bytes:
        """``raw`` if ``text``, the JSON of ``data``, reads back equal to ``data``."""
        try:
            back, end = self._scan(text, 0)
            exact = end == len(text) and back == data
        except (StopIteration, ValueError, RecursionError) as exc:
            raise UnserializableValue(_explain(data, exc)) from exc
        if not exact:
            raise UnserializableValue(_explain(data, None))
        return raw

    def loads(self, raw: bytes) -> dict[str, Any]:
        try:
            data = self._read(raw)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
            raise CorruptSession(f"stored session is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise CorruptSession(f"stored session is a JSON {type(data).__name__}, not an object")
        return data

    def _read(self, raw: bytes) -> Any:
        """``json.loads(raw)``, with a shorter way for what ``dumps`` writes: UTF-8 text
        that starts with ``{`` and holds one value and nothing after it."""
        if raw[:1] == b"{" and raw[1:2] != b"\x00":  # json.loads would read it as UTF-8 too
            text = raw.decode("utf-8", "surrogatepass")
            try:
                data, end = self._scan(text, 0)
            except StopIteration:
                data, end = None, -1
            if end == len(text):
                return data
        return json.loads(raw)  # the reason it is not JSON, or JSON with spaces around it


def _c_encoder(encoder: json.JSONEncoder) -> Callable[[Any, int], Any] | None:
    """The C encoder ``encoder.encode`` makes on every call, made once; None where json
    has no C accelerator.

    It keeps no record of the containers it is inside, as ``encode`` does to refuse a
    cycle: a cycle instead ends in RecursionError, which ``dumps`` refuses, naming the
    cycle, like any other.
    """
    if _make_c_encoder is None or encoder.indent is not None:
        return None
    ascii_only = encoder.ensure_ascii
    strings = json.encoder.encode_basestring_ascii if ascii_only else json.encoder.encode_basestring
    try:
        return _make_c_encoder(
            None,
            encoder.default,
            strings,
            None,
            encoder.key_separator,
            encoder.item_separator,
            encoder.sort_keys,
            encoder.skipkeys,
            encoder.allow_nan,
        )
    except TypeError:  # another Python's signature: keep to encode()
        return None


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

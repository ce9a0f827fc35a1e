"""The Session dict and the lifetime rules, without a store or a request."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from asgi_sessions import JSONSerializer, Session
from asgi_sessions.exceptions import CorruptSession, UnserializableValue
from asgi_sessions.session import EXPIRY_KEY, Lifetime

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def test_session_is_a_dict() -> None:
    session = Session({"a": 1})
    session.update(b=2)
    assert session.pop("a") == 1
    assert session.setdefault("c", []) == []
    assert isinstance(session, dict)
    assert json.loads(json.dumps(session)) == {"b": 2, "c": []}
    session.clear()
    assert session == {}


def test_new_session_has_no_record_yet() -> None:
    session = Session()
    assert session.is_new
    assert session.created_at is None and session.expires_at is None
    assert session.user_id is None


def test_user_id_is_kept_as_text() -> None:
    session = Session()
    session.user_id = 42
    assert session.user_id == "42"


def test_destroy_empties_the_dict_and_forgets_the_user() -> None:
    session = Session({"cart": [1]}, user_id="u")
    session.destroy()
    assert session == {} and session.user_id is None and session.destroy_requested


def test_flashes_are_popped_once_with_their_category() -> None:
    session = Session()
    session.flash("Saved")
    session.flash("Careful", "warning")
    assert session.pop_flashes() == [("info", "Saved"), ("warning", "Careful")]
    assert session.pop_flashes() == []


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        (60, 60.0),
        (timedelta(minutes=2), 120.0),
        (0, 0.0),
        (datetime(2031, 1, 1, tzinfo=UTC), "2031-01-01T00:00:00+00:00"),
    ],
)
def test_set_expiry_keeps_the_value_in_the_data(value: object, stored: object) -> None:
    session = Session()
    session.set_expiry(value)  # type: ignore[arg-type]
    assert session[EXPIRY_KEY] == stored
    session.set_expiry(None)
    assert EXPIRY_KEY not in session


def test_set_expiry_in_the_past_destroys() -> None:
    session = Session({"a": 1})
    session.set_expiry(-1)
    assert session.destroy_requested and session == {}


def test_set_expiry_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="aware datetime"):
        Session().set_expiry(datetime(2031, 1, 1))


def test_expiry_is_the_earlier_of_idle_and_absolute() -> None:
    lifetime = Lifetime(idle_timeout=3600, absolute_timeout=7200)
    assert lifetime.expires_at(T0, T0) == T0 + timedelta(hours=1)
    later = T0 + timedelta(minutes=90)
    assert lifetime.expires_at(T0, later) == T0 + timedelta(hours=2)


def test_own_expiry_wins_over_the_policy() -> None:
    lifetime = Lifetime(idle_timeout=3600, absolute_timeout=7200)
    assert lifetime.expires_at(T0, T0, 86400) == T0 + timedelta(days=1)
    fixed = (T0 + timedelta(days=3)).isoformat()
    assert lifetime.expires_at(T0, T0, fixed) == T0 + timedelta(days=3)
    assert lifetime.expires_at(T0, T0, 0) == T0 + timedelta(hours=1)


def test_idle_longer_than_absolute_is_refused() -> None:
    with pytest.raises(ValueError, match="longer than absolute_timeout"):
        Lifetime(idle_timeout=7200, absolute_timeout=3600)


def test_json_serializer_round_trips_and_names_bad_keys() -> None:
    serializer = JSONSerializer()
    data = {"text": "héllo ✓", "n": 1.5, "nested": {"list": [None, True]}}
    assert serializer.loads(serializer.dumps(data)) == data
    with pytest.raises(UnserializableValue, match=r"session\['bad'\]"):
        serializer.dumps({"ok": 1, "bad": {1, 2}})
    with pytest.raises(UnserializableValue, match="session key 3 is a int"):
        serializer.dumps({3: "x"})  # type: ignore[dict-item]


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_json_serializer_reports_corrupt_records(raw: bytes) -> None:
    with pytest.raises(CorruptSession):
        JSONSerializer().loads(raw)


@pytest.mark.anyio
async def test_save_outside_the_middleware_says_so() -> None:
    with pytest.raises(RuntimeError, match="not loaded by SessionMiddleware"):
        await Session().save()

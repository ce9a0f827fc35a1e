"""The Session dict, without a store or a request: dict behaviour, the user link,
flash messages, and what set_expiry accepts."""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from asgi_sessions import Session
from asgi_sessions.lifetime import EXPIRY_KEY
from asgi_sessions.session import MAX_USER_ID_LENGTH, Action, take_action


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
    assert session.created_at is None and session.expires_at is None and session.key is None
    assert session.user_id is None


def test_pending_actions_are_not_part_of_the_dicts_public_surface() -> None:
    public = {name for name in dir(Session()) if not name.startswith("_")} - set(dir({}))
    assert public == {
        "browser_session",
        "created_at",
        "destroy",
        "devices",
        "expires_at",
        "flash",
        "is_new",
        "key",
        "load",
        "pop_flashes",
        "regenerate",
        "reload",
        "revoke_device",
        "revoke_others",
        "save",
        "set_expiry",
        "user_id",
    }


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        (42, "42"),
        ("42", "42"),
        ("ada@example.com", "ada@example.com"),
        ("ünïcode-用户", "ünïcode-用户"),
        (uuid.UUID(int=7), "00000000-0000-0000-0000-000000000007"),
        ("x" * MAX_USER_ID_LENGTH, "x" * MAX_USER_ID_LENGTH),
        (None, None),
    ],
)
def test_user_id_is_kept_as_text_so_1_and_the_string_1_are_one_user(
    value: object, kept: str | None
) -> None:
    session = Session()
    session.user_id = value  # type: ignore[assignment]
    assert session.user_id == kept


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        ("a\x00b", ValueError, "control character"),
        ("a\nb", ValueError, "control character"),
        ("\ud800", ValueError, "lone surrogate"),
        ("x" * (MAX_USER_ID_LENGTH + 1), ValueError, "over the limit of 256"),
        ("x" * 1_000_000, ValueError, "over the limit"),
        ("", ValueError, "must not be empty"),
        (True, TypeError, "str, int or UUID"),
        (1.5, TypeError, "str, int or UUID"),
        (b"bytes", TypeError, "str, int or UUID"),
    ],
)
def test_user_id_refuses_what_a_store_could_not_keep(
    value: object, error: type[Exception], message: str
) -> None:
    session = Session(user_id="before")
    with pytest.raises(error, match=message):
        session.user_id = value  # type: ignore[assignment]
    assert session.user_id == "before"


def test_destroy_empties_the_dict_and_forgets_the_user() -> None:
    session = Session({"cart": [1]}, user_id="u")
    session.destroy()
    assert session == {} and session.user_id is None
    assert take_action(session) is Action.DESTROY
    assert take_action(session) is None


def test_destroy_wins_over_regenerate_in_either_order() -> None:
    first = Session()
    first.regenerate()
    first.destroy()
    second = Session()
    second.destroy()
    second.regenerate()
    assert take_action(first) is take_action(second) is Action.DESTROY


def test_flashes_are_popped_once_as_category_message_pairs() -> None:
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
        (datetime.max.replace(tzinfo=UTC), "9999-12-31T23:59:59.999999+00:00"),
    ],
)
def test_set_expiry_keeps_the_value_in_the_data(value: object, stored: object) -> None:
    session = Session()
    session.set_expiry(value)  # type: ignore[arg-type]
    assert session[EXPIRY_KEY] == stored
    session.set_expiry(None)
    assert EXPIRY_KEY not in session


@pytest.mark.parametrize("value", [-1, -0.001, timedelta(seconds=-5)])
def test_set_expiry_in_the_past_destroys(value: int | float | timedelta) -> None:
    session = Session({"a": 1})
    session.set_expiry(value)
    assert take_action(session) is Action.DESTROY and session == {}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (math.nan, "number of seconds"),
        (-math.inf, "number of seconds"),
        (math.inf, "finite"),
        (1e12, "over the limit of 36500 days"),
        (timedelta.max, "over the limit"),
        (datetime(2031, 1, 1), "aware datetime"),
    ],
)
def test_set_expiry_refuses_at_the_call_what_it_cannot_store(value: object, message: str) -> None:
    session = Session({"a": 1})
    with pytest.raises(ValueError, match=message):
        session.set_expiry(value)  # type: ignore[arg-type]
    assert session == {"a": 1}
    assert take_action(session) is None


@pytest.mark.parametrize("value", [True, "60", [60]])
def test_set_expiry_refuses_values_of_the_wrong_type(value: object) -> None:
    with pytest.raises(TypeError, match="set_expiry"):
        Session().set_expiry(value)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_save_outside_the_middleware_says_so() -> None:
    with pytest.raises(RuntimeError, match="not held by SessionMiddleware"):
        await Session().save()

"""The lifetime policy: durations and their errors, the timeouts, and a session's own
expiry, capped by the absolute timeout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from asgi_sessions.exceptions import CorruptSession
from asgi_sessions.lifetime import (
    DEFAULT_ABSOLUTE_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    Lifetime,
    check_own_expiry,
    describe,
)

T0 = datetime(2030, 1, 1, tzinfo=UTC)
DAY = 86400.0


def policy(**options: object) -> Lifetime:
    settings: dict[str, object] = {
        "max_age": None,
        "idle_timeout": None,
        "absolute_timeout": None,
        "touch_interval": 60,
    }
    settings.update(options)
    return Lifetime.from_options(**settings)  # type: ignore[arg-type]


def test_expiry_is_the_earlier_of_idle_and_absolute() -> None:
    lifetime = Lifetime(idle_timeout=3600, absolute_timeout=7200)
    assert lifetime.expires_at(T0, T0) == T0 + timedelta(hours=1)
    later = T0 + timedelta(minutes=90)
    assert lifetime.expires_at(T0, later) == T0 + timedelta(hours=2)


def test_own_expiry_wins_over_the_idle_timeout() -> None:
    lifetime = Lifetime(idle_timeout=3600, absolute_timeout=7 * DAY)
    assert lifetime.expires_at(T0, T0, DAY) == T0 + timedelta(days=1)
    fixed = (T0 + timedelta(days=3)).isoformat()
    assert lifetime.expires_at(T0, T0, fixed) == T0 + timedelta(days=3)
    assert lifetime.expires_at(T0, T0, 0) == T0 + timedelta(hours=1)


def test_own_expiry_never_outlives_the_absolute_timeout() -> None:
    lifetime = Lifetime(idle_timeout=3600, absolute_timeout=3 * DAY)
    assert lifetime.expires_at(T0, T0, 7 * DAY) == T0 + timedelta(days=3)
    day_2 = T0 + timedelta(days=2)
    assert lifetime.expires_at(T0, day_2, 7 * DAY) == T0 + timedelta(days=3)
    far = datetime.max.replace(tzinfo=UTC).isoformat()
    assert lifetime.expires_at(T0, T0, far) == T0 + timedelta(days=3)


def test_defaults_are_two_weeks_idle_and_thirty_days_absolute() -> None:
    lifetime = policy()
    assert (lifetime.idle_timeout, lifetime.absolute_timeout) == (
        DEFAULT_IDLE_TIMEOUT,
        DEFAULT_ABSOLUTE_TIMEOUT,
    )


@pytest.mark.parametrize("name", ["max_age", "idle_timeout"])
def test_a_long_idle_timeout_alone_raises_the_default_absolute_timeout(name: str) -> None:
    lifetime = policy(**{name: 90 * DAY})
    assert lifetime.idle_timeout == lifetime.absolute_timeout == 90 * DAY


def test_idle_longer_than_an_explicit_absolute_names_the_arguments_in_days() -> None:
    with pytest.raises(ValueError, match="longer than absolute_timeout") as caught:
        policy(max_age=90 * DAY, absolute_timeout=timedelta(days=30))
    message = str(caught.value)
    assert message.startswith("max_age (90 days)")
    assert "(30 days)" in message and "raise absolute_timeout" in message


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_age": -5}, r"^max_age must be zero or more seconds, got -5$"),
        ({"idle_timeout": float("nan")}, r"^idle_timeout must be a finite number"),
        ({"absolute_timeout": float("inf")}, r"^absolute_timeout must be a finite number"),
        ({"touch_interval": timedelta(days=-1)}, r"^touch_interval must be zero or more"),
        ({"absolute_timeout": 1e12}, r"^absolute_timeout is 11574074.1 days, over the limit"),
        ({"max_age": 60, "idle_timeout": 60}, "not both"),
    ],
)
def test_duration_errors_name_the_argument_the_user_passed(
    options: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        policy(**options)


def test_a_duration_of_the_wrong_type_is_a_type_error_naming_it() -> None:
    with pytest.raises(TypeError, match=r"^max_age must be seconds or a timedelta, not str"):
        policy(max_age="3600")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (90 * DAY, "90 days"),
        (DAY, "1 day"),
        (5400, "1.5 hours"),
        (120, "2 minutes"),
        (45, "45 seconds"),
        (1, "1 second"),
    ],
)
def test_durations_are_described_as_people_say_them(seconds: float, text: str) -> None:
    assert describe(seconds) == text


def test_max_age_is_none_for_browser_cookies_and_at_least_one_second() -> None:
    lifetime = Lifetime(idle_timeout=3600, absolute_timeout=7200)
    assert lifetime.max_age(T0 + timedelta(seconds=10.2), T0) == 11
    assert lifetime.max_age(T0 + timedelta(microseconds=1), T0) == 1
    assert lifetime.max_age(T0 + timedelta(hours=1), T0, 0) is None
    browser = Lifetime(idle_timeout=3600, absolute_timeout=7200, browser_cookie=True)
    assert browser.max_age(T0 + timedelta(hours=1), T0) is None


@pytest.mark.parametrize("stored", [None, 0, 60, 60.5, "2031-01-01T00:00:00+00:00"])
def test_stored_own_expiry_as_written_is_accepted(stored: object) -> None:
    check_own_expiry(stored)


@pytest.mark.parametrize(
    "stored", [-1, True, "2031-01-01T00:00:00", "soon", [60], {"s": 1}, 1e300, float("nan")]
)
def test_a_tampered_own_expiry_is_a_corrupt_session(stored: object) -> None:
    with pytest.raises(CorruptSession):
        check_own_expiry(stored)

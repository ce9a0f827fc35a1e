"""How long a session lives: the middleware's policy, the durations it is given, and a
session's own expiry set by ``set_expiry()``.

Everything about time lives here: parsing and checking durations (errors name the
argument the user passed and speak in days, hours or minutes), the defaults, the
policy that turns them into an ``expires_at``, and the encoding, checking and
decoding of the per-session expiry kept in the session data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from asgi_sessions.exceptions import CorruptSession

__all__ = [
    "ALREADY_OVER",
    "DEFAULT_ABSOLUTE_TIMEOUT",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_TOUCH_INTERVAL",
    "EXPIRY_KEY",
    "MAX_DURATION",
    "Duration",
    "Lifetime",
    "check_own_expiry",
    "describe",
    "duration",
    "is_browser_session",
    "own_expiry",
]

Duration = int | float | timedelta
"""Seconds, or a timedelta."""

DEFAULT_IDLE_TIMEOUT = 14 * 24 * 3600.0
"""Two weeks of inactivity, as Starlette's ``max_age``."""

DEFAULT_ABSOLUTE_TIMEOUT = 30 * 24 * 3600.0
"""Thirty days since creation, however active the session (raised to the idle
timeout when only a longer one is given)."""

DEFAULT_TOUCH_INTERVAL = 60.0
"""Slide a read-only session's expiry at most once a minute."""

MAX_DURATION = 100 * 365 * 24 * 3600.0
"""The longest duration accepted anywhere: a hundred years, well inside datetime's range."""

EXPIRY_KEY = "_session_expiry"
"""Where a session's own ``set_expiry`` value is kept in its data, as in Django."""

ALREADY_OVER = -1.0
"""What ``own_expiry`` returns for a negative duration: the session ends at commit."""

_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60))


def describe(seconds: float) -> str:
    """A duration as people say it: ``90 days``, ``1.5 hours``, ``45 seconds``."""
    for unit, size in _UNITS:
        if abs(seconds) >= size:
            amount = seconds / size
            text = f"{amount:.1f}".removesuffix(".0")
            return f"{text} {unit}{'' if text == '1' else 's'}"
    text = f"{seconds:g}"
    return f"{text} second{'' if text == '1' else 's'}"


def duration(value: Any, name: str) -> float:
    """``value`` (seconds or a timedelta) in seconds; a ValueError naming ``name`` unless it
    is a finite number from zero up to a hundred years."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise TypeError(f"{name} must be seconds or a timedelta, not {type(value).__name__}")
    if not math.isfinite(seconds):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")
    if seconds < 0:
        raise ValueError(f"{name} must be zero or more seconds, got {value!r}")
    if seconds > MAX_DURATION:
        raise ValueError(
            f"{name} is {describe(seconds)}, over the limit of {describe(MAX_DURATION)}; "
            "pass a shorter duration"
        )
    return seconds


@dataclass(frozen=True, slots=True)
class Lifetime:
    """The middleware's expiry policy: idle and absolute timeouts, and how often to slide.

    ``browser_cookie`` makes every cookie a browser-session cookie (Starlette's
    ``max_age=None``); the server still applies the timeouts.
    """

    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    absolute_timeout: float = DEFAULT_ABSOLUTE_TIMEOUT
    touch_interval: float = DEFAULT_TOUCH_INTERVAL
    browser_cookie: bool = False
    idle: timedelta = field(init=False, repr=False, compare=False)
    absolute: timedelta = field(init=False, repr=False, compare=False)
    touch: timedelta = field(init=False, repr=False, compare=False)
    """The three durations as timedeltas, made once rather than on every request."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "idle", timedelta(seconds=self.idle_timeout))
        object.__setattr__(self, "absolute", timedelta(seconds=self.absolute_timeout))
        object.__setattr__(self, "touch", timedelta(seconds=self.touch_interval))

    @classmethod
    def from_options(
        cls,
        *,
        max_age: Duration | None,
        idle_timeout: Duration | None,
        absolute_timeout: Duration | None,
        touch_interval: Duration,
        browser_cookie: bool = False,
    ) -> Lifetime:
        """Build the policy from the middleware's keywords, with errors that name them.

        ``max_age`` is Starlette's spelling of the idle timeout. Without an explicit
        ``absolute_timeout``, the absolute timeout is the default or the idle timeout,
        whichever is longer, so a Starlette app with a long ``max_age`` keeps working.
        """
        if idle_timeout is not None and max_age is not None:
            raise ValueError("pass idle_timeout or its Starlette alias max_age, not both")
        idle_name = "max_age" if max_age is not None else "idle_timeout"
        given = max_age if max_age is not None else idle_timeout
        idle = DEFAULT_IDLE_TIMEOUT if given is None else duration(given, idle_name)
        if absolute_timeout is None:
            absolute = max(DEFAULT_ABSOLUTE_TIMEOUT, idle)
        else:
            absolute = duration(absolute_timeout, "absolute_timeout")
            if idle > absolute:
                raise ValueError(
                    f"{idle_name} ({describe(idle)}) is longer than absolute_timeout "
                    f"({describe(absolute)}), so the session would always end at "
                    f"{describe(absolute)}: raise absolute_timeout to at least "
                    f"{describe(idle)}, or shorten {idle_name}"
                )
        touch = duration(touch_interval, "touch_interval")
        return cls(idle, absolute, touch, browser_cookie)

    def expires_at(self, created_at: datetime, now: datetime, own: Any = None) -> datetime:
        """When a session active at ``now`` expires, given its own ``set_expiry`` value.

        A session's own value wins over the idle timeout, but never outlives the
        absolute timeout; a browser-session value (0) keeps the policy.
        """
        end = created_at + self.absolute
        if isinstance(own, str):
            return min(datetime.fromisoformat(own), end)
        if isinstance(own, int | float) and own > 0:
            return min(now + timedelta(seconds=own), end)
        return min(now + self.idle, end)

    def max_age(self, expires_at: datetime, now: datetime, own: Any = None) -> int | None:
        """The cookie's Max-Age for a record expiring at ``expires_at``: whole seconds,
        at least 1, so browser and server agree; None for a browser-session cookie."""
        if self.browser_cookie or is_browser_session(own):
            return None
        return max(1, math.ceil((expires_at - now).total_seconds()))


def own_expiry(value: Duration | datetime | None) -> float | str | None:
    """The stored form of ``set_expiry(value)``: seconds, or an aware ISO datetime.

    Negative seconds mean "already over" and come back as ALREADY_OVER; anything that cannot
    be stored (NaN, infinity, over a hundred years, a naive datetime) is a ValueError.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("set_expiry() needs an aware datetime, e.g. datetime.now(UTC)")
        return value.astimezone(UTC).isoformat()
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise TypeError(
            f"set_expiry() takes seconds, a timedelta, a datetime or None, "
            f"not {type(value).__name__}"
        )
    if math.isnan(seconds) or seconds == -math.inf:
        raise ValueError(f"set_expiry() needs a number of seconds, got {value!r}")
    if seconds < 0:
        return ALREADY_OVER
    return duration(seconds, "set_expiry()")


def is_browser_session(own: Any) -> bool:
    """True when the stored own expiry asks for a browser-session cookie (``set_expiry(0)``)."""
    return own == 0 and not isinstance(own, bool)


def check_own_expiry(own: Any) -> None:
    """Raise CorruptSession unless ``own`` is an own expiry as ``own_expiry`` stores it.

    A tampered or foreign record could hold anything there; it must count as no
    session rather than fail at commit with a 500.
    """
    if own is None:
        return
    if isinstance(own, str):
        try:
            if datetime.fromisoformat(own).tzinfo is not None:
                return
        except ValueError:
            pass
    elif (
        isinstance(own, int | float)
        and not isinstance(own, bool)
        and 0 <= own <= MAX_DURATION
    ):
        return
    raise CorruptSession(f"its own expiry {own!r} is neither seconds nor an aware datetime")

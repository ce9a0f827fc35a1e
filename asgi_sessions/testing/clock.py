"""A clock the test owns, so expiry is tested by moving time rather than sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class FrozenClock:
    """Callable clock that stands still until ``advance`` moves it."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float = 0, **delta: float) -> datetime:
        """Move time forward by ``seconds`` plus any timedelta keywords; return the new now."""
        self.now += timedelta(seconds=seconds, **delta)
        return self.now

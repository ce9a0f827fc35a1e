"""A limit on the live sessions of one user, kept atomically across processes.

``SessionMiddleware(max_sessions_per_user=3, session_limit="evict_oldest")``: when a
write gives a session to a user (a login), the user holds at most three live
sessions afterwards. ``evict_oldest`` ends the user's oldest other sessions (oldest by
creation); ``refuse`` writes nothing and raises SessionLimitReached instead.

The count, the login and the evictions happen under the user's lock
(``SessionStore.user_lock``), one login of a user at a time in every process that
shares the store: twenty concurrent logins leave exactly the limit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from asgi_sessions.exceptions import SessionLimitReached
from asgi_sessions.stores._tasks import uninterrupted
from asgi_sessions.stores.base import SessionRecord, SessionStore

__all__ = ["LimitPolicy", "SessionLimit", "within_limit"]

LimitPolicy = Literal["evict_oldest", "refuse"]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SessionLimit:
    """At most ``sessions`` live sessions per user; what a login over it does."""

    sessions: int
    policy: LimitPolicy = "evict_oldest"

    def __post_init__(self) -> None:
        if isinstance(self.sessions, bool) or not isinstance(self.sessions, int):
            raise TypeError(f"max_sessions_per_user must be an int, not {self.sessions!r}")
        if self.sessions < 1:
            raise ValueError(f"max_sessions_per_user must be 1 or more, got {self.sessions}")
        if self.policy not in ("evict_oldest", "refuse"):
            raise ValueError(
                f"session_limit={self.policy!r}: use 'evict_oldest' (a new login ends the"
                " oldest session) or 'refuse' (it raises SessionLimitReached)"
            )


async def within_limit(
    store: SessionStore,
    user_id: str,
    limit: SessionLimit,
    attach: Callable[[], Awaitable[T]],
    *,
    key: str | None = None,
) -> tuple[T, list[SessionRecord]]:
    """Run ``attach``, the write that gives a session (``key``, if it has one yet) to
    ``user_id``, keeping the user within ``limit``; return its result and the sessions
    ended to make room.

    Under the user's lock: the user's other live sessions are counted; with ``refuse``
    and as many as the limit, SessionLimitReached is raised and nothing is written;
    otherwise ``attach`` runs, then, unless it returned None (nothing written), the
    oldest others beyond the limit are ended, whatever they hold. A cancellation of
    the caller waits for these steps to end (the store's timeouts bound them).
    """
    return await uninterrupted(_within_limit(store, user_id, limit, attach, key))


async def _within_limit(
    store: SessionStore,
    user_id: str,
    limit: SessionLimit,
    attach: Callable[[], Awaitable[T]],
    key: str | None,
) -> tuple[T, list[SessionRecord]]:
    """``within_limit``'s steps, which a cancellation of the caller must not cut between
    the login and the evictions (that would leave the user over the limit)."""
    async with store.user_lock(user_id):
        others = [record for record in await store.user_sessions(user_id) if record.key != key]
        if limit.policy == "refuse" and len(others) >= limit.sessions:
            raise SessionLimitReached(
                f"user {user_id!r} already has {len(others)} live sessions, the most"
                f" max_sessions_per_user={limit.sessions} allows; sign one out first"
                " (session.revoke_device or revoke_others)"
            )
        result = await attach()
        if result is None:  # nothing was written (a session whose own expiry is over)
            return result, []
        evicted = others[: max(0, len(others) - (limit.sessions - 1))]  # oldest first
        for record in evicted:
            await store.destroy(record.key)
        return result, evicted

"""Session events: async callbacks for sign-ins, logouts, revokes and outages.

The app subscribes to what it wants to hear of, for a "new sign-in from ..." email or
an audit log::

    events = SessionEvents()

    @events.on("login")
    async def new_sign_in(event: SessionEvent) -> None:
        await mailer.send(event.user_id, f"New sign-in from {event.device}")

    app.add_middleware(SessionMiddleware, store=store, events=events)

Events happen inside the commit (the one place every write goes through) and are
delivered after the response has been sent, one callback after another, so they
never delay or break a request: a callback that fails is logged and the next runs.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

__all__ = ["EventKind", "Listener", "SessionEvent", "SessionEvents"]

logger = logging.getLogger("asgi_sessions")

EventKind = Literal[
    "created", "login", "regenerated", "destroyed", "revoked", "expired", "unavailable"
]
"""What happened:

- ``created``: a new session was stored;
- ``login``: a session was given a user (or another user);
- ``regenerated``: a session got a new id, keeping its data;
- ``destroyed``: the app ended a session (logout);
- ``revoked``: a session was ended from elsewhere: by its user (another device), by
  an operator, or by the limit of sessions per user;
- ``expired``: a cookie came back naming no live session (it expired, was ended, or
  never existed: the store cannot tell which), or a loaded session was found past its
  lifetime and retired;
- ``unavailable``: the store could not be reached, so the request got a 503.
"""

KINDS: frozenset[str] = frozenset(get_args(EventKind))

KEY_SHOWN = 12
"""Hex digits of the stored key an event carries: enough to match log lines, and a
prefix of a digest, never the token."""


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """One thing that happened to a session, as a callback receives it."""

    kind: EventKind
    user_id: str | None
    """The session's user, if any (for ``login``, the new one)."""
    key_prefix: str | None
    """The first KEY_SHOWN hex digits of the stored key; None when there is no record."""
    reason: str
    """Why, in a few words: "logout", "by the user", "absolute timeout", an error."""
    request: Any = None
    """The Starlette ``Request`` it happened in, or None (an operator's revoke)."""
    device: str | None = None
    """The client's user agent and address, when devices are tracked."""


Listener = Callable[[SessionEvent], Awaitable[None]]
"""An async callback; whatever it raises is logged, never passed on."""


@dataclass
class SessionEvents:
    """The callbacks an app subscribed, by kind of event."""

    _listeners: dict[str, list[Listener]] = field(default_factory=dict)

    def on(self, *kinds: EventKind) -> Callable[[Listener], Listener]:
        """Subscribe the decorated async function to ``kinds`` (all kinds if none)."""

        def subscribe(listener: Listener) -> Listener:
            self.subscribe(listener, *kinds)
            return listener

        return subscribe

    def subscribe(self, listener: Listener, *kinds: EventKind) -> None:
        """Call ``listener`` for each event of ``kinds`` (all kinds if none)."""
        unknown = sorted(set(kinds) - KINDS)
        if unknown:
            raise ValueError(
                f"unknown session event {', '.join(unknown)}: choose from {sorted(KINDS)}"
            )
        for kind in kinds or sorted(KINDS):
            self._listeners.setdefault(kind, []).append(listener)

    def wants(self, kind: EventKind) -> bool:
        """Whether any callback listens for ``kind``."""
        return kind in self._listeners

    async def deliver(self, events: Iterable[SessionEvent]) -> None:
        """Call each event's listeners in turn; log what they raise and go on."""
        for event in events:
            for listener in self._listeners.get(event.kind, ()):
                try:
                    await listener(event)
                except Exception:
                    logger.exception(
                        "session event callback %s failed on %s (session %s...)",
                        getattr(listener, "__qualname__", listener),
                        event.kind,
                        event.key_prefix,
                    )

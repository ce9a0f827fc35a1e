"""Loading a Session from a store and committing it back.

This is where the lifetime rules meet the store contract: create with a fresh
token, compare-and-set updates that merge with a concurrent writer, sliding
expiry at most once per ``touch_interval``, and never writing back a session
that was destroyed elsewhere. Nothing here knows about cookies or HTTP.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from asgi_sessions import tokens
from asgi_sessions.exceptions import (
    CorruptSession,
    SessionExists,
    SessionTooLarge,
    StoreUnavailable,
)
from asgi_sessions.serializers import JSONSerializer, Serializer
from asgi_sessions.session import (
    EXPIRY_KEY,
    Lifetime,
    Session,
    UnloadedSession,
    check_own_expiry,
    seconds,
)
from asgi_sessions.stores.base import SessionRecord, SessionStore

logger = logging.getLogger("asgi_sessions")

DEFAULT_IDLE_TIMEOUT = 14 * 24 * 3600
"""Two weeks of inactivity, as Starlette's ``max_age``."""

DEFAULT_ABSOLUTE_TIMEOUT = 30 * 24 * 3600
"""Thirty days since creation, however active the session."""

DEFAULT_MAX_SIZE = 64 * 1024
"""Largest serialized session accepted, in bytes."""

_ATTEMPTS = 5
"""Tries for one commit: token collisions on create, concurrent writers on update."""


class SessionBackend:
    """Everything the middleware needs from a store, for any store."""

    def __init__(
        self,
        store: SessionStore,
        lifetime: Lifetime,
        *,
        serializer: Serializer | None = None,
        max_size: int = DEFAULT_MAX_SIZE,
        generate_token: tokens.TokenGenerator | None = None,
    ) -> None:
        self.store = store
        self.lifetime = lifetime
        self.serializer: Serializer = serializer or JSONSerializer()
        self.max_size = max_size
        self._generate_token = generate_token

    def new_token(self) -> str:
        """A fresh token; a custom generator's output is checked like a cookie's."""
        if self._generate_token is None:
            return tokens.generate_token()
        return tokens.checked(self._generate_token())

    def dumps(self, data: Mapping[str, Any]) -> bytes:
        """Serialize session data, refusing more than ``max_size`` bytes."""
        raw = self.serializer.dumps(data)
        if len(raw) > self.max_size:
            raise SessionTooLarge(
                f"session data is {len(raw) / 1024:.1f} KB, over max_size="
                f"{self.max_size / 1024:g} KB; store large objects elsewhere and keep "
                "their id in the session"
            )
        return raw

    async def create(
        self, data: Mapping[str, Any], user_id: str | None, created_at: datetime
    ) -> tuple[str, SessionRecord]:
        """Store a new record under a fresh token; return the token and the record."""
        raw = self.dumps(data)
        now = self.store.clock()
        expires_at = self.lifetime.expires_at(created_at, now, data.get(EXPIRY_KEY))
        for _ in range(_ATTEMPTS):
            token = self.new_token()
            record = SessionRecord(tokens.key_for(token), raw, user_id, created_at, expires_at)
            try:
                await self.store.create(record)
            except SessionExists:
                continue
            return token, record
        raise SessionExists(f"{_ATTEMPTS} new session tokens in a row were taken; check genid")


class ActiveSession:
    """One request's session: the Session dict, the token and record behind it."""

    __slots__ = ("backend", "ended", "pending", "record", "session", "token", "token_changed")

    def __init__(self, backend: SessionBackend, token: str | None = None) -> None:
        self.backend = backend
        self.pending = token
        """A well-formed cookie token whose record has not been read yet."""
        self.session = Session(handle=self) if token is None else UnloadedSession(handle=self)
        self.token: str | None = None
        """The token that names ``record``; None while nothing is stored."""
        self.record: SessionRecord | None = None
        self.token_changed = False
        """True once the client must be sent a new token or a new expiry."""
        self.ended = False
        """True once the client's token no longer names a session (logout)."""

    async def load(self) -> None:
        """Read the record the cookie's token names, once; then the Session is usable.

        A token naming no live or no readable record leaves a new, empty session. If
        the store is down, StoreUnavailable is raised and nothing changes.
        """
        if self.pending is None:
            return
        key = tokens.key_for(self.pending)
        record = await self.backend.store.read(key)
        token, self.pending = self.pending, None
        self.session.__class__ = Session
        if record is None:
            logger.warning("session cookie names no live session (key %s...)", key[:16])
            return
        try:
            data = self.backend.serializer.loads(record.data)
            check_own_expiry(data.get(EXPIRY_KEY), self.backend.store.clock())
        except CorruptSession as exc:
            logger.error("session %s... is unreadable, ignored: %s", key[:16], exc)
        else:
            self.adopt(token, record, data)

    def adopt(self, token: str, record: SessionRecord, data: dict[str, Any]) -> None:
        """Make ``record`` the loaded state: the baseline for change detection."""
        self.token, self.record = token, record
        session = self.session
        session.clear()
        session.update(data)
        session.user_id = record.user_id
        session.created_at, session.expires_at = record.created_at, record.expires_at
        session.key = record.key

    def _forget(self, *, data: bool = False) -> None:
        self.token = self.record = None
        self.session.created_at = self.session.expires_at = self.session.key = None
        if data:
            self.session.clear()
            self.session.user_id = None

    async def reload(self) -> None:
        """Reread the record; unsaved changes and pending regenerate/destroy are dropped."""
        if self.pending is not None:
            await self.load()
            return
        record = await self.backend.store.read(self.record.key) if self.record else None
        self.session.regenerate_requested = self.session.destroy_requested = False
        if record is None or self.token is None:
            self._forget(data=True)
        else:
            self.adopt(self.token, record, self.backend.serializer.loads(record.data))

    async def save(self) -> None:
        """Commit the session: create, regenerate, update, slide or destroy, as needed."""
        if self.pending is not None:
            return  # never loaded, so never touched
        session, store = self.session, self.backend.store
        if session.destroy_requested:
            session.destroy_requested = session.regenerate_requested = False
            if self.record is not None:
                await store.destroy(self.record.key)
                self.ended, self.token_changed = True, False
            self._forget()
        if self.record is None:
            if session or session.user_id is not None:
                await self._create(store.clock())
            return
        now = store.clock()
        own = session.get(EXPIRY_KEY)
        expires_at = self.backend.lifetime.expires_at(self.record.created_at, now, own)
        if expires_at <= now:
            session.destroy()
            await self.save()
        elif session.regenerate_requested:
            session.regenerate_requested = False
            old = self.record
            await self._create(old.created_at)
            await store.destroy(old.key)
        else:
            raw = self.backend.dumps(session)
            if raw != self.record.data or session.user_id != self.record.user_id:
                await self._update(raw, expires_at)
            elif expires_at - self.record.expires_at >= self.backend.lifetime.touch:
                await store.extend_lifetime(self.record.key, expires_at)
                self._written(dataclasses.replace(self.record, expires_at=expires_at))

    async def _create(self, created_at: datetime) -> None:
        session = self.session
        token, record = await self.backend.create(session, session.user_id, created_at)
        self.token, self.ended = token, False
        session.regenerate_requested = False  # a new record has a new ID already
        self._written(record)

    def _written(self, record: SessionRecord) -> None:
        self.record, self.token_changed = record, True
        self.session.created_at, self.session.expires_at = record.created_at, record.expires_at
        self.session.key = record.key

    async def _update(self, raw: bytes, expires_at: datetime) -> None:
        """Compare-and-set; on conflict, apply this request's changes to the fresh record."""
        assert self.record is not None
        store, loaded = self.backend.store, self.record
        record = dataclasses.replace(
            loaded, data=raw, user_id=self.session.user_id, expires_at=expires_at
        )
        changes: tuple[dict[str, Any], set[str]] | None = None
        for _ in range(_ATTEMPTS):
            if await store.update(record, expected_version=record.version):
                self._written(dataclasses.replace(record, version=record.version + 1))
                return
            fresh = await store.read(loaded.key)
            if fresh is None:
                # Destroyed or revoked meanwhile: never write it back, and leave the
                # cookie alone, since whoever ended it already answered the client.
                self._forget(data=True)
                return
            changes = changes or self._changes(loaded)
            record = self._merged(fresh, loaded, changes, expires_at)
        raise StoreUnavailable(
            f"session changed {_ATTEMPTS} times while being saved; retry the request"
        )

    def _changes(self, loaded: SessionRecord) -> tuple[dict[str, Any], set[str]]:
        """Keys this request set (with their values) and keys it deleted, versus ``loaded``."""
        before = self.backend.serializer.loads(loaded.data)
        dumps = self.backend.serializer.dumps
        changed = {
            key: value
            for key, value in self.session.items()
            if key not in before or dumps({key: value}) != dumps({key: before[key]})
        }
        return changed, set(before) - set(self.session)

    def _merged(
        self,
        fresh: SessionRecord,
        loaded: SessionRecord,
        changes: tuple[dict[str, Any], set[str]],
        expires_at: datetime,
    ) -> SessionRecord:
        changed, deleted = changes
        data = self.backend.serializer.loads(fresh.data)
        data.update(changed)
        for key in deleted:
            data.pop(key, None)
        session = self.session
        user_id = fresh.user_id if session.user_id == loaded.user_id else session.user_id
        session.clear()
        session.update(data)
        session.user_id = user_id
        return dataclasses.replace(
            fresh, data=self.backend.dumps(data), user_id=user_id, expires_at=expires_at
        )


async def create_session(
    store: SessionStore,
    data: Mapping[str, Any] | None = None,
    *,
    user_id: str | int | None = None,
    idle_timeout: float | timedelta = DEFAULT_IDLE_TIMEOUT,
    absolute_timeout: float | timedelta = DEFAULT_ABSOLUTE_TIMEOUT,
) -> str:
    """Save a session without a request and return the token to put in the cookie.

    For tests that log a client in directly, admin tools and API clients (FoalTS's
    ``createAndSaveSessionFromUser``). Use the middleware's timeouts.
    """
    lifetime = Lifetime(
        seconds(idle_timeout, "idle_timeout"), seconds(absolute_timeout, "absolute_timeout")
    )
    backend = SessionBackend(store, lifetime)
    owner = None if user_id is None else str(user_id)
    token, _ = await backend.create(dict(data or {}), owner, store.clock())
    return token

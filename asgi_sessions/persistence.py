"""Loading a request's session from a store and committing it back.

Every write goes through one of four guarded steps, each written once:

- **create**: a new record under a fresh token;
- **retire**: delete the loaded record (logout, expiry), or, for regenerate, delete
  it only while it is still the version this request loaded;
- **save**: compare-and-set on the loaded version, merging with a concurrent writer;
- **slide**: move the expiry, again only at the loaded version.

A record that another request ended is never written back, and a commit answers
with exactly what the client must be told (a new cookie, an expired one, or
nothing). Nothing here knows about HTTP.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, NamedTuple, TypeVar

from asgi_sessions import deadlines, merge, tokens
from asgi_sessions.devices import (
    Client,
    Device,
    DeviceTracking,
    device_id,
    list_devices,
    revoke_device,
)
from asgi_sessions.events import KEY_SHOWN, EventKind, SessionEvent, SessionEvents
from asgi_sessions.exceptions import (
    CorruptSession,
    SessionConflict,
    SessionExists,
    SessionLimitReached,
    SessionTooLarge,
    StoreUnavailable,
)
from asgi_sessions.lifetime import EXPIRY_KEY, Lifetime, check_own_expiry
from asgi_sessions.limits import SessionLimit, within_limit
from asgi_sessions.locks import LocalLocks
from asgi_sessions.sealing import Sealer
from asgi_sessions.serializers import JSONSerializer, Serializer
from asgi_sessions.session import (
    Action,
    Session,
    checked_user_id,
    empty_session,
    hand_over,
    is_blank,
    take_action,
)
from asgi_sessions.stores.base import SessionRecord, SessionStore
from asgi_sessions.telemetry import Telemetry

__all__ = [
    "DEFAULT_MAX_SIZE",
    "ActiveSession",
    "CookieUpdate",
    "SessionSettings",
    "create_session",
    "revoke_user_sessions",
]

logger = logging.getLogger("asgi_sessions")

DEFAULT_MAX_SIZE = 64 * 1024
"""Largest serialized session accepted, in bytes."""

_T = TypeVar("_T")

_NEW_TOKEN_ATTEMPTS = 5
"""Fresh tokens tried before giving up: a collision means a broken generator."""

_WRITE_ATTEMPTS = 12
"""Compare-and-set attempts against writers in other processes before SessionConflict."""


@dataclass(frozen=True, slots=True)
class CookieUpdate:
    """What the client must be told after a commit: a token to keep for ``max_age``
    seconds (None: until the browser closes), or, with ``token=None``, to forget it."""

    token: str | None
    max_age: int | None = None


EXPIRE_COOKIE = CookieUpdate(None)


class Created(NamedTuple):
    """A record just stored: the token that names it, the record, its serialized data."""

    token: str
    record: SessionRecord
    plain: bytes


_Step = Callable[[SessionRecord, dict[str, Any], str | None], Awaitable[bool]]
"""A compare-and-set on a record, given the data and user it should end up with."""

Step = Callable[[], Awaitable["CookieUpdate | None"]]
"""One guarded step of a commit, ready to run: it answers what the client must be told."""


@dataclass(frozen=True, slots=True, eq=False)
class SessionSettings:
    """How sessions are made and kept: the store, the lifetime policy, the data format,
    the size limit, the token generator and how data is sealed at rest. SessionMiddleware
    owns one; helpers that make sessions without a request (``create_session``,
    ``testing.login``) use it too."""

    store: SessionStore
    lifetime: Lifetime = field(default_factory=Lifetime)
    serializer: Serializer = field(default_factory=JSONSerializer)
    max_size: int = DEFAULT_MAX_SIZE
    generate_token: tokens.TokenGenerator | None = None
    sealer: Sealer | None = None
    devices: DeviceTracking = field(default_factory=DeviceTracking)
    events: SessionEvents | None = None
    telemetry: Telemetry | None = None
    limit: SessionLimit | None = None
    turns: LocalLocks = field(default_factory=LocalLocks, repr=False)
    """The writers of one session in this process take turns instead of failing each
    other's compare-and-set."""
    _dumps_against: Callable[[Mapping[str, Any], bytes], bytes] | None = field(
        init=False, repr=False
    )
    """The serializer's ``dumps_against``, if it has one, found once."""

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "_dumps_against", getattr(self.serializer, "dumps_against", None)
        )

    def new_token(self) -> str:
        """A fresh token; a custom generator's output is checked like a cookie's."""
        if self.generate_token is None:
            return tokens.generate_token()
        return tokens.checked(self.generate_token())

    def encode(self, data: Mapping[str, Any], *, unless: bytes | None = None) -> bytes:
        """Serialize session data, refusing what would not round-trip or is over max_size.

        With ``unless`` (the bytes a record was read from), data that serializes to just
        those bytes is returned as they are without the serializer's full check, if the
        serializer offers ``dumps_against``: nothing will be written, and the stored
        bytes read back as they always did.
        """
        if unless is not None and self._dumps_against is not None:
            raw = self._dumps_against(data, unless)
            if raw is unless:
                return raw
        else:
            raw = self.serializer.dumps(data)
        if len(raw) > self.max_size:
            raise SessionTooLarge(
                f"session data is {len(raw) / 1024:.1f} KB, over max_size="
                f"{self.max_size / 1024:g} KB; store large objects elsewhere and keep "
                "their id in the session"
            )
        return raw

    def sealed(self, plain: bytes, key: str, token: str) -> bytes:
        """What is stored for serialized data ``plain``: sealed, if data is sealed at rest."""
        return plain if self.sealer is None else self.sealer.seal(plain, key, token)

    def opened(self, record: SessionRecord, token: str | None) -> bytes:
        """The serialized data of a stored record; CorruptSession if it does not open."""
        if self.sealer is None:
            return record.data
        return self.sealer.open(record.data, record.key, token)

    def decode(self, plain: bytes) -> dict[str, Any]:
        """The data of serialized ``plain``; CorruptSession if it is unreadable or tampered."""
        data = self.serializer.loads(plain)
        check_own_expiry(data.get(EXPIRY_KEY))
        return data

    async def create(
        self,
        data: Mapping[str, Any],
        user_id: str | None,
        created_at: datetime,
        client: Client | None = None,
    ) -> Created | None:
        """Store a new record under a fresh token, stamped by ``client`` if given; return
        the token, the record and the serialized data, or None when the data's own expiry
        is already over (nothing is stored)."""
        raw = self.encode(data)
        now = self.store.clock()
        expires_at = self.lifetime.expires_at(created_at, now, data.get(EXPIRY_KEY))
        if expires_at <= now:
            return None
        for _ in range(_NEW_TOKEN_ATTEMPTS):
            token = self.new_token()
            key = tokens.key_for(token)
            stored = self.sealed(raw, key, token)
            record = SessionRecord(key, stored, user_id, created_at, expires_at)
            if client is not None:
                record = client.stamp(record, now)
            try:
                await self.store.create(record)
            except SessionExists:
                continue
            return Created(token, record, raw)
        raise SessionExists(
            f"{_NEW_TOKEN_ATTEMPTS} new session tokens in a row were taken; check generate_token"
        )


class ActiveSession:
    """One request's session: the Session dict the app sees, and the stored record and
    token behind it. ``commit()`` writes it back and says what the client must be told."""

    __slots__ = (
        "_budget",
        "_hooks",
        "_plain",
        "_unsent",
        "client",
        "happened",
        "record",
        "session",
        "settings",
        "token",
        "unread_token",
    )

    def __init__(
        self,
        settings: SessionSettings,
        token: str | None = None,
        client: Client | None = None,
        session: Session | None = None,
    ) -> None:
        self.settings = settings
        self.unread_token = token
        """A well-formed cookie token whose record has not been read yet."""
        self.client = client
        """The request's client, stamped on every write; None when devices are not tracked."""
        self.happened: tuple[SessionEvent, ...] = ()
        """Events for the app's callbacks, delivered by the middleware after the response."""
        self.token: str | None = None
        """The token that names ``record``; None while nothing is stored."""
        self.record: SessionRecord | None = None
        """The stored record as this request last read or wrote it."""
        self._plain = b""
        """The serialized data of ``record`` (opened, when sealed): the change baseline."""
        if session is None:
            session = empty_session(self, loaded=token is None)
        else:  # the request's Session, held until now by a stand-in: the app may keep it
            hand_over(session, self)
        self.session = session
        self._unsent: CookieUpdate | None = None
        self._budget = settings.store.timeout
        self._hooks: tuple[Callable[[], None], ...] = ()

    # -- reading -----------------------------------------------------------------------

    async def load(self) -> None:
        """Read the record the cookie's token names, once; then the Session is usable.

        A token naming no live or no readable record leaves a new, empty session. If
        the store is down, StoreUnavailable is raised and nothing changes.
        """
        if self.unread_token is None:
            return
        key = tokens.key_for(self.unread_token)
        record = await self._bounded(self.settings.store.read(key))
        token, self.unread_token = self.unread_token, None
        self.session.__class__ = Session
        if record is None:
            logger.debug("session cookie names no live session (key %s...)", key[:16])
            self._note("expired", key, None, "the cookie names no live session any more")
        else:
            self._adopt(record, token)

    async def reload(self) -> None:
        """Read the record again, dropping unsaved changes and a pending regenerate or
        destroy; an unreadable or vanished record leaves a new, empty session."""
        if self.unread_token is not None:
            await self.load()
            return
        take_action(self.session)
        record = None
        if self.record is not None:
            record = await self._bounded(self.settings.store.read(self.record.key))
        if record is None or self.token is None:
            self._forget()
        else:
            self._adopt(record, self.token)

    def _adopt(self, record: SessionRecord, token: str) -> None:
        """Show ``record`` in the Session, or nothing if its data cannot be read."""
        try:
            plain = self.settings.opened(record, token)
            data = self.settings.decode(plain)
        except CorruptSession as exc:
            logger.error("session %s... is unreadable, ignored: %s", record.key[:16], exc)
            self._forget()
            return
        self.token, self.record, self._plain = token, record, plain
        self._show(data, record.user_id)

    def _show(self, data: Mapping[str, Any], user_id: str | None) -> None:
        """Replace what the app sees with ``data`` and ``user_id``."""
        self.session.clear()
        self.session.update(data)
        self.session.user_id = user_id

    def _forget(self) -> None:
        """No record stands behind this session any more: show an empty one."""
        self.token = self.record = None
        self._plain = b""
        self._show({}, None)

    def _note(self, kind: EventKind, key: str | None, user_id: str | None, reason: str) -> None:
        """Count an event, if telemetry is on, and tell the app's callbacks of it."""
        self._count(kind)
        self._tell(kind, key, user_id, reason)

    def _count(self, kind: EventKind, times: int = 1) -> None:
        if self.settings.telemetry is not None and times:
            self.settings.telemetry.sessions.add(times, {"asgi_sessions.event": kind})

    def _tell(self, kind: EventKind, key: str | None, user_id: str | None, reason: str) -> None:
        """Keep an event for the app's callbacks, if one listens for its kind."""
        events = self.settings.events
        if events is None or not events.wants(kind):
            return
        device = None if self.client is None else self.client.describe()
        prefix = None if key is None else key[:KEY_SHOWN]
        event = SessionEvent(kind, user_id, prefix, reason, device=device)
        self.happened = (*self.happened, event)

    def _note_evicted(self, evicted: list[SessionRecord]) -> None:
        for record in evicted:
            self._note("revoked", record.key, record.user_id, "by the session limit")

    # -- the user's devices -------------------------------------------------------------

    async def devices(self) -> list[Device]:
        """The session's user's live sessions, this one marked current; [] if anonymous."""
        user_id = self.session.user_id
        if user_id is None:
            return []
        current = None if self.record is None else self.record.key
        return await self._bounded(list_devices(self.settings.store, user_id, current))

    async def revoke_device(self, id: str) -> bool:
        """End one of the user's sessions by its device id (this one: at commit, as
        ``destroy()``); False, ending nothing, if the id is none of theirs."""
        user_id = self.session.user_id
        if user_id is None:
            return False
        if self.record is not None and device_id(self.record.key) == id:
            self.session.destroy()
            return True
        key = await self._bounded(revoke_device(self.settings.store, user_id, id))
        if key is not None:
            self._note("revoked", key, user_id, "by the user")
        return key is not None

    async def revoke_others(self) -> int:
        """End every session of the user but this one; return how many were ended."""
        user_id = self.session.user_id
        if user_id is None:
            return 0
        keep = None if self.record is None else self.record.key
        store, events = self.settings.store, self.settings.events
        listed: list[SessionRecord] = []  # only to name each revoked session to a listener
        if events is not None and events.wants("revoked"):
            listed = await self._bounded(store.user_sessions(user_id))
        revoked = await self._bounded(store.destroy_user_sessions(user_id, keep=keep))
        self._count("revoked", revoked)
        for record in listed:
            if record.key != keep:
                self._tell("revoked", record.key, user_id, "by the user, with all but one")
        return revoked

    # -- committing --------------------------------------------------------------------

    def before_commit(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` before each commit that keeps changes (see ``session.before_commit``)."""
        self._hooks = (*self._hooks, hook)

    def must_load(self) -> bool:
        return self.unread_token is not None

    @property
    def idle(self) -> bool:
        """Whether a commit has nothing to do: the record was never read, or there is none
        and the app neither put anything in the session nor asked for anything.

        The middleware asks first, so that most requests skip the commit entirely.
        """
        if self.unread_token is not None:
            return True
        return (
            self.record is None
            and self._unsent is None
            and not self._hooks
            and is_blank(self.session)
        )

    async def save(self) -> None:
        """Commit now (``await request.session.save()``); the cookie goes with the response."""
        update = await self.commit()
        self._unsent = update or self._unsent

    async def commit(self, *, keep_changes: bool = True) -> CookieUpdate | None:
        """Write the session back; return what the client must be told, if anything.

        With ``keep_changes=False`` (the app answered 5xx) data changes are dropped, but
        a logout or a regenerate still happens. Raises SessionConflict when the record
        was ended (logout, revoke) or kept changing under this request, so nothing of
        this request could be saved.
        """
        if self.idle:
            return None
        if keep_changes:
            for hook in self._hooks:
                hook()
        step = self._next_step(keep_changes)
        update = None
        if step is not None:
            try:
                update = await self._bounded(step())
            except SessionLimitReached:  # the login is dropped; the rest may still be saved
                self.session.user_id = None if self.record is None else self.record.user_id
                raise
        unsent, self._unsent = self._unsent, None
        return update or unsent

    def _next_step(self, keep_changes: bool) -> Step | None:
        """Decide which guarded step this commit needs, if any, without a store call.

        Deciding first keeps a request with nothing to write (most of them) free of the
        deadline's cost, and keeps what each step does in the step.
        """
        session, lifetime = self.session, self.settings.lifetime
        action = take_action(session)
        if action is Action.DESTROY:
            return partial(self._end, start_again=keep_changes, why=("destroyed", "logout"))
        record = self.record
        if record is None:
            if keep_changes and (session or session.user_id is not None):
                now = self.settings.store.clock()
                return partial(self._create, session, session.user_id, now)
            return None
        if keep_changes:
            data, user_id = dict(session), session.user_id
        else:
            data, user_id = self.settings.decode(self._plain), record.user_id
        now = self.settings.store.clock()
        expires_at = lifetime.expires_at(record.created_at, now, data.get(EXPIRY_KEY))
        if expires_at <= now:  # its own lifetime is over
            return partial(self._end, start_again=False, why=("expired", "its lifetime is over"))
        if action is Action.REGENERATE:
            return partial(self._regenerate, data, user_id)
        if not keep_changes:
            return None
        raw = self.settings.encode(data, unless=self._plain)
        if raw != self._plain or user_id != record.user_id:
            return partial(self._save, data, user_id, raw, expires_at)
        if expires_at - record.expires_at >= lifetime.touch:
            return partial(self._slide, record, expires_at)
        return None

    async def _create(
        self,
        data: Mapping[str, Any],
        user_id: str | None,
        created_at: datetime,
        *,
        succeeds: SessionRecord | None = None,
        limit_held: bool = False,
    ) -> CookieUpdate | None:
        """Create: store the data as a new record under a fresh token (the successor of
        ``succeeds``, when regenerating), within the user's session limit unless the
        caller holds it already."""
        previous_user = None if succeeds is None else succeeds.user_id
        attaching = user_id is not None and user_id != previous_user

        def create() -> Awaitable[Created | None]:
            return self.settings.create(data, user_id, created_at, self.client)

        if attaching and self.settings.limit is not None and not limit_held:
            assert user_id is not None
            made, evicted = await within_limit(
                self.settings.store, user_id, self.settings.limit, create
            )
            self._note_evicted(evicted)
        else:
            made = await create()
        if made is None:
            return None
        self.token, self.record, self._plain = made
        key = made.record.key
        if succeeds is None:
            self._note("created", key, user_id, "a new session")
        else:
            self._note("regenerated", key, user_id, f"succeeds {succeeds.key[:KEY_SHOWN]}")
        if attaching:
            self._note("login", key, user_id, "user attached")
        return self._cookie(made.record, data)

    async def _end(
        self, *, start_again: bool, why: tuple[EventKind, str]
    ) -> CookieUpdate | None:
        """Retire the record whatever its version (logout, or a lifetime that is over),
        then start a new session if the app put data in after destroy()."""
        had_record = self.record is not None
        if self.record is not None:
            await self.settings.store.destroy(self.record.key)
            kind, reason = why
            self._note(kind, self.record.key, self.record.user_id, reason)
        data, user_id = dict(self.session), self.session.user_id
        self._forget()
        if start_again and (data or user_id is not None):
            self._show(data, user_id)
            return await self._create(data, user_id, self.settings.store.clock())
        return EXPIRE_COOKIE if had_record else None

    async def _regenerate(self, data: dict[str, Any], user_id: str | None) -> CookieUpdate | None:
        """Retire the loaded record only while it is still the version this request loaded
        (merging with a concurrent writer otherwise), then create its successor.

        In that order, a cancellation between the two steps logs the user out rather
        than leaving two live sessions, and a session ended meanwhile stays ended.
        """
        assert self.record is not None
        store = self.settings.store

        async def retire(record: SessionRecord, data: dict[str, Any], user: str | None) -> bool:
            return await store.destroy(record.key, expected_version=record.version)

        async def retire_then_create(limit_held: bool) -> CookieUpdate | None:
            assert self.record is not None
            async with self.settings.turns.hold(self.record.key):
                retired, settled, user = await self._settle(data, user_id, retire)
            self.record = self.token = None
            return await self._create(
                settled, user, retired.created_at, succeeds=retired, limit_held=limit_held
            )

        limit = self.settings.limit
        if limit is None or user_id is None or user_id == self.record.user_id:
            return await retire_then_create(limit_held=False)
        # a login: check the limit before anything is retired
        update, evicted = await within_limit(
            store, user_id, limit, lambda: retire_then_create(limit_held=True)
        )
        self._note_evicted(evicted)
        return update

    async def _save(
        self, data: dict[str, Any], user_id: str | None, raw: bytes, expires_at: datetime
    ) -> CookieUpdate:
        """Compare-and-set the data at the loaded version, merging with concurrent writers.

        ``raw`` and ``expires_at`` are the serialized data and the expiry decided for the
        loaded record; after a merge, both are decided again for the merged data.
        """
        assert self.record is not None and self.token is not None
        store, lifetime, loaded = self.settings.store, self.settings.lifetime, self.record
        token = self.token

        async def write(record: SessionRecord, data: dict[str, Any], user: str | None) -> bool:
            if record is loaded:
                plain, until = raw, expires_at
            else:
                plain = self.settings.encode(data)
                until = lifetime.expires_at(record.created_at, store.clock(), data.get(EXPIRY_KEY))
            stored = self.settings.sealed(plain, record.key, token)
            key, created_at, version = record.key, record.created_at, record.version
            if self.client is None:  # the device fields as they are
                agent, ip, seen = record.user_agent, record.ip, record.last_seen_at
            else:
                agent, ip, seen = self.client.user_agent, self.client.ip, store.clock()
            new = SessionRecord(key, stored, user, created_at, until, version, agent, ip, seen)
            if not await store.update(new, expected_version=version):
                return False
            if user is not None and user != record.user_id:
                self._note("login", key, user, "user attached")
            self.record = SessionRecord(
                key, stored, user, created_at, until, version + 1, agent, ip, seen
            )
            self._plain = plain
            return True

        async with self.settings.turns.hold(loaded.key):
            limit = self.settings.limit
            if limit is None or user_id is None or user_id == loaded.user_id:
                _, data, _ = await self._settle(data, user_id, write)
            else:  # a login: within the user's limit
                settled, evicted = await within_limit(
                    store,
                    user_id,
                    limit,
                    lambda: self._settle(data, user_id, write),
                    key=loaded.key,
                )
                data = settled[1]
                self._note_evicted(evicted)
        assert self.record is not None
        return self._cookie(self.record, data)

    async def _settle(
        self, data: dict[str, Any], user_id: str | None, step: _Step
    ) -> tuple[SessionRecord, dict[str, Any], str | None]:
        """Run the compare-and-set ``step(record, data, user_id)`` until it succeeds,
        merging this request's changes into the fresh record after each loss.

        Returns the record the step succeeded on, with the data and user it wrote (the
        app's Session shows any merge). Raises SessionConflict if the record is gone
        (it was ended, so it must not come back) or keeps changing.
        """
        assert self.record is not None
        loaded = record = self.record
        loaded_plain = self._plain
        changes: merge.Changes | None = None
        telemetry = self.settings.telemetry
        for attempt in range(_WRITE_ATTEMPTS):
            if await step(record, data, user_id):
                return record, data, user_id
            if telemetry is not None:
                telemetry.retries.add(1)
            fresh = await self.settings.store.read(loaded.key)
            if fresh is None:
                self._forget()
                if telemetry is not None:
                    telemetry.conflicts.add(1)
                raise SessionConflict(
                    "the session was ended (logout or revoke) while this request was saving "
                    "it; nothing was saved"
                )
            if changes is None:
                changes = self._changes(loaded_plain, loaded.user_id, data, user_id)
            fresh_data = self.settings.decode(self.settings.opened(fresh, self.token))
            data, user_id = merge.merged(fresh_data, fresh.user_id, changes)
            self._show(data, user_id)
            record = fresh
            if attempt:  # writers in other processes: step out of their way a little
                await asyncio.sleep(random.uniform(0, 0.002 * attempt))
        if telemetry is not None:
            telemetry.conflicts.add(1)
        raise SessionConflict(
            f"the session changed {_WRITE_ATTEMPTS} times while this request was saving it; "
            "nothing was saved, retry the request"
        )

    def _changes(
        self,
        loaded_plain: bytes,
        loaded_user: str | None,
        data: Mapping[str, Any],
        user_id: str | None,
    ) -> merge.Changes:
        dumps = self.settings.serializer.dumps
        return merge.changes(
            self.settings.decode(loaded_plain),
            data,
            loaded_user,
            user_id,
            lambda a, b: dumps({"": a}) == dumps({"": b}),
        )

    async def _slide(self, record: SessionRecord, expires_at: datetime) -> CookieUpdate | None:
        """Move the expiry of an unchanged session, only at the version it was loaded."""
        store = self.settings.store
        seen = None if self.client is None else store.clock()
        moved = await store.extend_lifetime(
            record.key, expires_at, expected_version=record.version, seen_at=seen
        )
        if not moved:  # ended or changed meanwhile: whoever did it told the client
            return None
        self.record = dataclasses.replace(record, expires_at=expires_at)
        if seen is not None:
            self.record = dataclasses.replace(self.record, last_seen_at=seen)
        return self._cookie(self.record, self.session)

    def _cookie(self, record: SessionRecord, data: Mapping[str, Any]) -> CookieUpdate:
        assert self.token is not None
        now = self.settings.store.clock()
        max_age = self.settings.lifetime.max_age(record.expires_at, now, data.get(EXPIRY_KEY))
        return CookieUpdate(self.token, max_age)

    def _bounded(self, work: Awaitable[_T]) -> Awaitable[_T]:
        """Store ``work`` to await, bounded together with all of this request's other
        store work by the store's timeout, if the store has one."""
        return work if self._budget is None else self._within_deadline(work, self._budget)

    async def _within_deadline(self, work: Awaitable[_T], budget: float) -> _T:
        """Await ``work`` within what is left of the request's ``budget`` of seconds."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            return await deadlines.within(work, budget)
        except TimeoutError:  # a store's own timeout counts as the deadline's
            raise self._too_slow() from None
        finally:
            assert self._budget is not None
            self._budget -= loop.time() - started

    def _too_slow(self) -> StoreUnavailable:
        return StoreUnavailable(
            f"the session store did not answer within {self.settings.store.timeout:g} s "
            "for this request; check the store's load and reachability, or raise its timeout"
        )


async def create_session(
    target: Any,
    data: Mapping[str, Any] | None = None,
    *,
    user_id: str | int | None = None,
) -> str:
    """Save a session without a request and return the token to put in the cookie.

    ``target`` is the app (or the SessionMiddleware) whose settings to follow: its
    store, timeouts, serializer, size limit and token generator. A bare SessionStore
    gets the default settings. For tests that log a client in directly, admin tools and
    API clients (FoalTS's ``createAndSaveSessionFromUser``).
    """
    from asgi_sessions.middleware import find_middleware

    if isinstance(target, SessionStore):
        settings = SessionSettings(target)
    else:
        settings = find_middleware(target).settings
    made = await settings.create(dict(data or {}), checked_user_id(user_id), settings.store.clock())
    if made is None:
        raise ValueError("the data's own expiry (set_expiry) is already over: nothing to create")
    return made.token


async def revoke_user_sessions(
    target: Any, user_id: str | int, *, keep: str | None = None, reason: str = "by an operator"
) -> int:
    """End every session of ``user_id`` but the one keyed ``keep``, from an admin route or
    a job; return how many were ended.

    ``target`` is the app (or its SessionMiddleware): the sessions go from its store, and
    its ``events`` callbacks hear a ``revoked`` event for each, with ``reason``.
    """
    from asgi_sessions.middleware import find_middleware

    settings = find_middleware(target).settings
    user = checked_user_id(user_id)
    assert user is not None
    store, events = settings.store, settings.events
    listed = []
    if events is not None and events.wants("revoked"):
        listed = [r for r in await store.user_sessions(user) if r.key != keep]
    revoked = await store.destroy_user_sessions(user, keep=keep)
    if settings.telemetry is not None and revoked:
        settings.telemetry.sessions.add(revoked, {"asgi_sessions.event": "revoked"})
    if events is not None:
        await events.deliver(
            SessionEvent("revoked", user, record.key[:KEY_SHOWN], reason) for record in listed
        )
    return revoked

"""``asgi-sessions``: look after a session store from the shell, or run the demo.

Exit codes: 0 done, 1 failed (bad store URL, store unreachable, refused), 2 bad
usage. Long jobs show progress when stderr is a terminal and stay quiet in cron.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import inspect
import sys
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from asgi_sessions.exceptions import SessionError
from asgi_sessions.sealing import KeyRing, TokenBound
from asgi_sessions.stores import _store_class, create_store, redact_url
from asgi_sessions.stores.base import (
    DEFAULT_PAUSE_RATIO,
    ProgressCallback,
    SessionRecord,
    SessionStore,
)

__all__ = ["main"]

PROG = "asgi-sessions"
IP_SHOWN = 39
"""Columns for a client address: a full IPv6 address fits."""
DEVICE_SHOWN = 80
"""Characters of a user agent ``sessions`` shows."""
DEMO_STORE = "sqlite:///asgi-sessions-demo.db"
KEY_SHOWN = 16
"""Characters of a key listed by ``sessions`` and accepted by ``revoke --keep``."""
CONCURRENCY = 32
MIGRATE_BATCH = 1000
MIGRATE_IN_FLIGHT = 3
"""Records in flight at once during migrate and rekey."""


class Failure(Exception):
    """The command could not do its job; the message is printed and the exit code is 1."""


class UsageError(Exception):
    """The command was called in a way it cannot honour; exit code 2."""


def _open(url: str, *, create: bool = False) -> SessionStore:
    """Build the store ``url`` names; a bad URL or a store that cannot be loaded is a Failure.

    A command reads what is there: a store that would create its database file
    (``create_file``, as SQLite's) is told not to, unless ``create`` (the demo, and
    the destination of migrate).
    """
    try:
        return create_store(url, **({} if create else _existing_only(url)))
    except (ValueError, TypeError, ImportError) as exc:
        raise Failure(str(exc)) from exc


def _existing_only(url: str) -> dict[str, Any]:
    """Options that keep the store ``url`` names from creating its database, if it has one."""
    store_class = _store_class(urlsplit(url).scheme.lower(), url)
    if "create_file" in inspect.signature(store_class).parameters:
        return {"create_file": False}
    return {}


def _count(number: int, noun: str) -> str:
    """``0 sessions``, ``1 session``, ``2 sessions``: a number and its noun, agreeing."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _confirm(question: str, yes: bool) -> None:
    """Go on if ``--yes`` was given or the user says so at a terminal; stop otherwise."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError("stdin is not a terminal, so there is no one to confirm: pass --yes")
    if input(f"{question} [y/N] ").strip().lower() not in ("y", "yes"):
        raise Failure("not confirmed; nothing changed")


@contextmanager
def _progress(label: str, total: int | None = None) -> Iterator[ProgressCallback]:
    """Yield a callback showing a running count on a terminal: a rich bar if installed."""
    if not sys.stderr.isatty():
        yield lambda done: None
        return
    try:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
    except ImportError:
        last, of = 0.0, f"/{total}" if total else ""

        def show(done: int) -> None:
            nonlocal last
            if time.monotonic() - last >= 0.1:  # a few redraws a second, not one per row
                last = time.monotonic()
                print(f"\r{label}: {done}{of}", end="", file=sys.stderr)

        try:
            yield show
        finally:
            print(file=sys.stderr)
        return
    from rich.console import Console

    columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda done: bar.update(task, completed=done)


async def cleanup(args: argparse.Namespace) -> None:
    """Delete expired sessions in batches; for cron."""
    async with _open(args.store) as store:
        with _progress("removing expired sessions") as progress:
            removed = await store.cleanup_expired_sessions(
                batch_size=args.batch_size, progress=progress, pause_ratio=args.pause_ratio
            )
    print(f"removed {_count(removed, 'expired session')}")


async def stats(args: argparse.Namespace) -> None:
    """Count live sessions and the users they belong to, in one streaming pass."""
    live = anonymous = 0
    users: set[str] = set()
    async with _open(args.store) as store:
        with _progress("counting sessions") as progress:
            async for record in store.all():
                live += 1
                if record.user_id is None:
                    anonymous += 1
                else:
                    users.add(record.user_id)
                if live % 1000 == 0:
                    progress(live)
    lines = {
        "live sessions": live,
        "  of logged-in users": live - anonymous,
        "  anonymous": anonymous,
        "users with sessions": len(users),
    }
    for label, value in lines.items():
        print(f"{label:<22}{value}")


async def sessions(args: argparse.Namespace) -> None:
    """List a user's live sessions by key prefix; stores hold no tokens to show."""
    async with _open(args.store) as store:
        records = await store.user_sessions(args.user)
    if not records:
        print(f"no live sessions for user {args.user!r}")
        return
    when = "{:<23}  "
    heads = "".join(when.format(head) for head in ("CREATED", "EXPIRES", "SEEN"))
    print(f"{'KEY':<{KEY_SHOWN}}  {heads}{'IP':<{IP_SHOWN}}  DEVICE")
    for r in records:
        seen = "-" if r.last_seen_at is None else _when(r.last_seen_at)
        times = "".join(when.format(t) for t in (_when(r.created_at), _when(r.expires_at), seen))
        device = (r.user_agent or "-")[:DEVICE_SHOWN]
        print(f"{r.key[:KEY_SHOWN]}  {times}{r.ip or '-':<{IP_SHOWN}}  {device}")


def _kept(records: list[SessionRecord], prefix: str, user_id: str) -> str:
    """The one key among ``records`` that starts with ``prefix``; anything else is a Failure."""
    matches = [record.key for record in records if record.key.startswith(prefix.lower())]
    if len(matches) != 1:
        raise Failure(
            f"--keep {prefix!r} matches {_count(len(matches), 'live session')} of user"
            f" {user_id!r}, not exactly one; nothing revoked"
        )
    return matches[0]


async def revoke(args: argparse.Namespace) -> None:
    """End every session of a user (but ``--keep``), after confirmation."""
    async with _open(args.store) as store:
        records = await store.user_sessions(args.user)
        keep = None if args.keep is None else _kept(records, args.keep, args.user)
        doomed = len(records) - (keep is not None)
        if doomed:
            _confirm(f"Revoke {_count(doomed, 'session')} of user {args.user!r}?", args.yes)
        revoked = await store.destroy_user_sessions(args.user, keep=keep) if doomed else 0
    print(f"revoked {_count(revoked, 'session')} of user {args.user!r}")


async def repair(args: argparse.Namespace) -> None:
    """Bring the user index back in line with the records (after a node lost data)."""
    async with _open(args.store) as store:
        with _progress("checking sessions") as progress:
            fixed = await store.repair_user_index(batch_size=args.batch_size, progress=progress)
    print(f"repaired the user index: {_count(fixed, 'index link')} added or dropped")


async def _each_record(
    store: SessionStore, label: str, job: Callable[[SessionRecord], Awaitable[str]]
) -> dict[str, int]:
    """Run ``job`` on every live record of ``store``, ``CONCURRENCY`` at a time, with a
    progress bar; count the outcomes it returns."""
    counts: dict[str, int] = {}
    total = await store.count()
    slots = asyncio.Semaphore(CONCURRENCY)
    with _progress(label, total) as progress:

        async def run(record: SessionRecord) -> None:
            try:
                outcome = await job(record)
                counts[outcome] = counts.get(outcome, 0) + 1
                progress(sum(counts.values()))
            finally:
                slots.release()

        async with asyncio.TaskGroup() as jobs:
            async for record in store.all():
                await slots.acquire()
                jobs.create_task(run(record))
    return counts


async def _import_all(
    source: SessionStore, target: SessionStore, progress: ProgressCallback
) -> Counter[str]:
    """Copy every live record of ``source`` into ``target`` a batch at a time, with up to
    MIGRATE_IN_FLIGHT batches being written while the next is read; count the outcomes."""
    counts: Counter[str] = Counter()
    writing: deque[asyncio.Task[Counter[str]]] = deque()

    async def oldest_written() -> None:
        counts.update(await writing.popleft())
        progress(counts.total())

    batch: list[SessionRecord] = []
    try:
        async for record in source.all():
            batch.append(record)
            if len(batch) == MIGRATE_BATCH:
                if len(writing) == MIGRATE_IN_FLIGHT:
                    await oldest_written()
                writing.append(asyncio.create_task(target.import_records(batch)))
                batch = []
        writing.append(asyncio.create_task(target.import_records(batch)))
        while writing:
            await oldest_written()
    finally:
        for task in writing:
            task.cancel()
    return counts


def _outcomes(counts: dict[str, int], *names: str) -> str:
    return ", ".join(f"{counts.get(name, 0)} {name}" for name in names)


async def migrate(args: argparse.Namespace) -> None:
    """Stream every live record from one store to another, keeping keys and versions.

    Records go over in batches of ``MIGRATE_BATCH``, each one bulk call of the target
    (``import_records``: a statement or a pipeline or two), so memory stays bounded by a
    batch and a page of the source. A record the target holds in a newer version is
    left alone, so running it again is safe. Sealed records move as they are.
    """
    if args.source == args.target:
        raise UsageError("FROM_URL and TO_URL are the same store")
    async with _open(args.source) as source, _open(args.target, create=True) as target:
        present = await target.count()
        if present:
            _confirm(
                f"{redact_url(args.target)} already holds {_count(present, 'session')};"
                " older copies of migrated sessions will be replaced. Go on?",
                args.yes,
            )
        with _progress("migrating sessions", await source.count()) as progress:
            counts = await _import_all(source, target, progress)
    print(
        f"migrated {redact_url(args.source)} -> {redact_url(args.target)}: "
        + _outcomes(counts, "copied", "replaced", "skipped")
    )


def _key_ring(path: str) -> KeyRing:
    """The KeyRing named ``module:attribute``, as the app imports it."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise UsageError(f"--keyring {path!r}: write MODULE:NAME, e.g. myapp.settings:KEYRING")
    try:
        ring = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise Failure(f"cannot load the key ring {path!r}: {exc}") from exc
    if isinstance(ring, TokenBound):
        raise Failure(
            "token-bound sessions are sealed with their clients' tokens; the server holds "
            "no key, so there is nothing to re-seal"
        )
    if not isinstance(ring, KeyRing):
        raise Failure(f"{path} is a {type(ring).__name__}, not an asgi_sessions KeyRing")
    return ring


async def _reseal(store: SessionStore, ring: KeyRing, record: SessionRecord) -> str:
    """Re-seal one record under the ring's first key, compare-and-set on its version, so
    a request saving it meanwhile wins and nobody is logged out."""
    for _ in range(5):
        try:
            if ring.is_current(record.data):
                return "current"
            plain = ring.open(record.data, record.key, None)
        except SessionError:
            return "unreadable"
        resealed = dataclasses.replace(record, data=ring.seal(plain, record.key, ""))
        if await store.update(resealed, expected_version=record.version):
            return "resealed"
        fresh = await store.read(record.key)  # saved meanwhile, or ended
        if fresh is None:
            return "ended"
        record = fresh
    return "busy"


async def rekey(args: argparse.Namespace) -> None:
    """Re-seal every record under the key ring's first key, live and safe to run again."""
    ring = _key_ring(args.keyring)
    async with _open(args.store) as store:
        counts = await _each_record(
            store, "re-sealing sessions", lambda record: _reseal(store, ring, record)
        )
    print(
        f"re-sealed {redact_url(args.store)} under key {ring.current!r}: "
        + _outcomes(counts, "resealed", "current", "ended", "unreadable", "busy")
    )
    if counts.get("busy"):
        raise Failure("some sessions kept changing while being re-sealed: run rekey again")


def demo(args: argparse.Namespace) -> None:
    """Serve the demo app with uvicorn."""
    try:
        import uvicorn
    except ImportError as exc:
        raise Failure("the demo needs uvicorn: pip install 'asgi-server-sessions[cli]'") from exc
    from asgi_sessions.demo import build_demo

    app = build_demo(_open(args.store, create=True))
    print(f"demo at http://{args.host}:{args.port}/ (sessions in {redact_url(args.store)})")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def _ratio(text: str) -> float:
    value = float(text)
    if not value >= 0:  # NaN too
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


STORE_URL_HELP = (
    "the session store: sqlite:///sessions.db (relative path), sqlite:////srv/app/sessions.db"
    " (absolute), postgresql://user@host/db, redis://host:6379/0, redis+cluster://host:7000,"
    " redis+sentinel://s1:26379,s2:26379/mymaster/0, or any scheme an installed store registers"
)
USER_HELP = "the user's id, as the app set it in request.session.user_id"
YES_HELP = "do not ask for confirmation (needed without a terminal, as in cron)"


def _batch_size(sub: argparse.ArgumentParser, what: str) -> None:
    sub.add_argument(
        "--batch-size",
        type=_positive,
        default=1000,
        metavar="N",
        help=f"{what} (default %(default)s)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Look after a session store, or run the demo.",
        epilog=f"run '{PROG} COMMAND --help' for a command's arguments and an example",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str, run: Callable[[argparse.Namespace], Any], summary: str, *examples: str
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=summary,
            description=summary,
            epilog="examples:\n" + "\n".join(f"  {PROG} {name} {each}" for each in examples),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.set_defaults(run=run)
        return sub

    sub = command(
        "demo",
        demo,
        "serve the demo app (needs the cli extra)",
        "--port 8080",
        "--store redis://localhost:6379/0",
    )
    sub.add_argument(
        "--store",
        default=DEMO_STORE,
        metavar="STORE_URL",
        help=f"where the demo keeps its sessions (default {DEMO_STORE}, created if missing)",
    )
    serve = "the {} to serve on (default %(default)s)"
    sub.add_argument("--host", default="127.0.0.1", help=serve.format("address"))
    sub.add_argument("--port", type=int, default=8000, help=serve.format("port"))

    sub = command(
        "cleanup",
        cleanup,
        "delete expired sessions in batches and say how many (for cron)",
        "sqlite:///sessions.db",
        "postgresql://app@db/app --batch-size 5000",
    )
    sub.add_argument("store", metavar="STORE_URL", help=STORE_URL_HELP)
    _batch_size(sub, "delete at most N sessions per statement, so no lock is held for long")
    sub.add_argument(
        "--pause-ratio",
        type=_ratio,
        default=DEFAULT_PAUSE_RATIO,
        metavar="R",
        help="after each batch, pause R times as long as it took, so the app's reads keep "
        "their speed; 0 sweeps flat out (default %(default)s)",
    )

    sub = command(
        "stats",
        stats,
        "count live sessions, logged-in and anonymous, and users with sessions",
        "sqlite:///sessions.db",
        "'redis://cache:6379/0?prefix=shop:'   # quote a URL with ? or &",
    )
    sub.add_argument("store", metavar="STORE_URL", help=STORE_URL_HELP)

    sub = command(
        "sessions",
        sessions,
        "list a user's live sessions: key prefix, created, expires, last seen, device",
        "sqlite:///sessions.db --user 42",
    )
    sub.add_argument("store", metavar="STORE_URL", help=STORE_URL_HELP)
    sub.add_argument("--user", required=True, metavar="ID", help=USER_HELP)

    sub = command(
        "revoke",
        revoke,
        "end every session of a user, or all but one (log out everywhere)",
        "sqlite:///sessions.db --user 42",
        "postgresql://app@db/app --user 42 --keep 3f2a9c0d1e4b5a6f --yes",
    )
    sub.add_argument("store", metavar="STORE_URL", help=STORE_URL_HELP)
    sub.add_argument("--user", required=True, metavar="ID", help=USER_HELP)
    sub.add_argument(
        "--keep",
        metavar="KEY",
        help="leave this session alone: its key, or the prefix 'sessions' lists",
    )
    sub.add_argument("--yes", action="store_true", help=YES_HELP)

    sub = command(
        "repair",
        repair,
        "rebuild the user index from the sessions, so revoke finds them all (Redis)",
        "redis+cluster://node-1:6379",
        "'redis://cache:6379/0?prefix=shop:' --batch-size 5000",
    )
    sub.add_argument("store", metavar="STORE_URL", help=STORE_URL_HELP)
    _batch_size(sub, "check at most N sessions per round trip")

    sub = command(
        "migrate",
        migrate,
        "copy every live session to another store, keeping keys, users and expiry",
        "sqlite:///sessions.db postgresql://app@db/app",
        "redis://old-cache:6379/0 redis://new-cache:6379/0 --yes",
    )
    sub.add_argument(
        "source", metavar="FROM_URL", help="the store to copy from (a STORE_URL); it must exist"
    )
    sub.add_argument(
        "target",
        metavar="TO_URL",
        help="the store to copy into (a STORE_URL); a missing SQLite file is created",
    )
    sub.add_argument("--yes", action="store_true", help=YES_HELP)

    sub = command(
        "rekey",
        rekey,
        "re-seal every session under the key ring's first key, live (after a key rotation)",
        "sqlite:///sessions.db --keyring myapp.settings:KEYRING",
        "'postgresql://app@db/app?table_name=web' --keyring myapp.sessions:ring",
    )
    sub.add_argument("store", metavar="STORE_URL", help=STORE_URL_HELP)
    sub.add_argument(
        "--keyring",
        required=True,
        metavar="MODULE:NAME",
        help="the KeyRing the app passes as encryption=, imported as the app imports it",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; return the exit code (0 ok, 1 failure, 2 bad usage)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    try:
        if args.command == "demo":
            demo(args)
        else:
            job: Callable[[argparse.Namespace], Coroutine[Any, Any, None]] = args.run
            asyncio.run(job(args))
    except UsageError as exc:
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (Failure, SessionError) as exc:
        print(f"{PROG} {args.command}: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

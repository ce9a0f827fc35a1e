"""How RedisStore reaches Redis: a client per event loop, built from a URL or given.

Kept apart from the store so that it reads as keys and commands. Here:

- A URL builds a client for one server (``redis://``, ``rediss://``, ``unix://``), for
  the primary that Redis Sentinel names (``redis+sentinel://``, ``rediss+sentinel://``),
  or for a Redis Cluster (``redis+cluster://``, ``rediss+cluster://``), once per event loop.
- A Sentinel client asks the Sentinels for the primary's address whenever it connects,
  so after a failover its next connection goes to the new primary.
- A cluster client sends each keyed command through ``on_key_owner``: one connection
  to the slot's primary, ASKING on that same connection when a slot is being migrated;
  and concurrent calls share one attempt to learn the cluster's layout again.
- With ``wait_for_replicas``, each write is followed by WAIT on the connection that made
  it, and one that too few replicas acknowledge in time is StoreUnavailable.
- A client opens at most ``max_connections`` (per node) and refuses the next one
  instead of waiting, so a gate lets that many calls run at once and queues the rest
  (up to ``socket_timeout``). redis-py's blocking pool would queue them too, but at the
  cost of a lock, a condition and a timer on every command, queued or not.
- Every driver error becomes ``StoreUnavailable`` (a refused value ``ValueError``), so
  nothing of redis leaks out.
- Batches go in one pipeline: one round trip per node, one script call per slot, or
  one per key while the slot is being migrated between primaries.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple, cast
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, PipelineCommand, RedisCluster
from redis.asyncio.connection import SSLConnection, parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.commands.cluster import READ_COMMANDS
from redis.exceptions import (
    AskError,
    BusyLoadingError,
    ClusterCrossSlotError,
    ClusterDownError,
    ClusterError,
    ConnectionError,
    DataError,
    MaxConnectionsError,
    MovedError,
    NoScriptError,
    RedisClusterException,
    RedisError,
    SlotNotCoveredError,
    TimeoutError,
    TryAgainError,
)

from asgi_sessions.exceptions import SessionError, StoreUnavailable
from asgi_sessions.stores._loop import RETRY_AFTER, LoopLocal, SharedAttempt
from asgi_sessions.stores._turn_batches import TurnBatches
from asgi_sessions.stores._urls import redact_url

__all__ = [
    "SCHEMES",
    "Client",
    "RedisConnection",
    "ReplicaWait",
    "each",
    "eval_by_slot",
    "eval_groups",
    "on_key_owner",
    "open_client",
    "run_script",
    "scan",
    "unavailable",
]

Client = Redis | RedisCluster
SCHEMES = {
    "redis", "rediss", "unix", "redis+cluster", "rediss+cluster", "redis+sentinel",
    "rediss+sentinel",
}  # fmt: skip
SENTINEL_PARAMETERS = frozenset({"sentinel_username", "sentinel_password"})
"""Query parameters of a ``redis+sentinel://`` URL for the Sentinels themselves (the
user and password in the URL are the data servers')."""
SENTINEL_PORT = 26379
_DRIVER_ERRORS = (RedisError, RedisClusterException)
"""redis-py's own errors; some are also ValueErrors (LockError), yet say nothing of a value."""


@contextmanager
def unavailable(where: str) -> Iterator[None]:
    """Let nothing of redis out: any error from the driver becomes StoreUnavailable.

    Not only RedisError: under a failover redis-py also raises plain Python errors (an
    AttributeError from a connection another task closed), and each must be a 503, not
    a 500. A value redis-py refuses to send (its DataError, or text it cannot encode)
    becomes a ValueError: the server is up, the value is wrong. Our own errors (a
    SessionError, a ValueError about a value) pass unchanged, as does cancellation,
    which is no Exception.
    """
    try:
        yield
    except SessionError:
        raise
    except DataError as exc:
        raise ValueError(f"Redis refused a value: {exc}") from exc
    except UnicodeEncodeError as exc:
        raise ValueError(f"a value cannot be sent to Redis as UTF-8: {exc}") from exc
    except Exception as exc:
        if isinstance(exc, ValueError) and not isinstance(exc, _DRIVER_ERRORS):
            raise
        raise StoreUnavailable(
            f"Redis at {where} failed or did not answer in time ({type(exc).__name__}: "
            f"{exc}); check that it is running and reachable, and the URL and timeouts"
        ) from exc


def _changes_data(args: Sequence[Any]) -> bool:
    """Whether a command may change data, so ``wait_for_replicas`` waits after it: any
    command redis-py does not list as read-only (every script the store runs, too)."""
    return str(args[0]).upper() not in READ_COMMANDS


@dataclass(frozen=True)
class ReplicaWait:
    """After each write, ``WAIT replicas timeout_ms`` on the connection that made it.

    WAIT counts the replicas that have acknowledged every write made so far on its own
    connection, so it must follow the write on that connection: one pipeline on one
    server, the slot's primary's connection on a cluster.
    """

    replicas: int
    timeout_ms: int

    def check(self, acknowledged: int) -> None:
        """Refuse to acknowledge a write fewer replicas than asked have acknowledged.

        Its primary took it, but a failover now could lose it, so the caller hears of
        an unavailable store (a 503), never that the write is safe.
        """
        if acknowledged < self.replicas:
            raise StoreUnavailable(
                f"Redis took a write but only {acknowledged} of {self.replicas} replicas "
                f"acknowledged it within {self.timeout_ms} ms, so it is not known to be "
                "durable and is not acknowledged; check the replicas' health and links "
                f"(wait_for_replicas={self.replicas})"
            )


_Command = tuple[tuple[Any, ...], dict[str, Any]]
"""A command's arguments and its options, as ``execute_command`` takes them."""


class _Server(Redis):
    """The one-server client a URL builds: with ``replica_wait``, each write goes in a
    pipeline with WAIT after it, so both run on the same connection. Built through
    Sentinel, it also closes the Sentinel clients that find its primary."""

    replica_wait: ReplicaWait | None = None
    sentinel_manager: Sentinel | None = None
    _batches: TurnBatches[_Command, Any] | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        try:
            await super().aclose(close_connection_pool)
        finally:
            if self.sentinel_manager is not None:
                await self.sentinel_manager.aclose()

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        wait = self.replica_wait
        if wait is None:  # the commands of a turn share a pipeline
            if self._batches is None:
                self._batches = TurnBatches(self._send, self._pipelined)
            return await self._batches.run((args, options))
        if not _changes_data(args):
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        pipe = self.pipeline(transaction=False)
        pipe.execute_command(*args, **options)
        pipe.execute_command("WAIT", wait.replicas, wait.timeout_ms)
        result, acknowledged = await pipe.execute()
        wait.check(acknowledged)
        return result

    async def _send(self, command: _Command) -> Any:
        args, options = command
        return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]

    async def _pipelined(self, commands: list[_Command]) -> list[Any]:
        """Commands in one pipeline without MULTI; each reply, or each command's error."""
        pipe = self.pipeline(transaction=False)
        for args, options in commands:
            pipe.execute_command(*args, **options)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies


class _Cluster(RedisCluster):
    """The cluster client a URL builds: each keyed command goes through ``on_key_owner``,
    so an ASK redirection during a slot migration is followed correctly under load, and
    with ``replica_wait`` a write is followed by WAIT on the same connection.

    Commands without a key, or with a routing rule of redis-py's own (SCAN on every
    primary, SCRIPT LOAD on every node), go as redis-py sends them, without WAIT: every
    write the store makes names a key.
    """

    replica_wait: ReplicaWait | None = None
    _relearning: SharedAttempt[RedisCluster] | None = None

    async def initialize(self, *args: Any, **kwargs: Any) -> RedisCluster:
        """Learn the cluster's layout, once for all concurrent callers.

        redis-py re-learns it under a lock after a node fails, so against a silent
        cluster each waiting caller repeated the whole attempt in turn (a startup node
        after another, each a timeout): the twentieth request waited half a minute.
        Callers now share one attempt, and its failure stands for a second. (redis-py's
        hint of which node failed last, to try it last, is not passed on.)
        """
        if not self._initialize:
            return self
        if self._relearning is None:
            self._relearning = SharedAttempt(super().initialize, retry_after=RETRY_AFTER)
        return await self._relearning()

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        key = None if "target_nodes" in kwargs else await self._routing_key(args)
        if key is None:
            return await super().execute_command(*args, **kwargs)
        wait = self.replica_wait if _changes_data(args) else None
        waits = [] if wait is None else [("WAIT", wait.replicas, wait.timeout_ms)]
        result, *acknowledged = await on_key_owner(self, key, args, *waits, options=kwargs)
        if wait is not None:
            wait.check(acknowledged[0])
        return result

    async def _routing_key(self, args: Sequence[Any]) -> Any | None:
        """The key whose slot a command goes to, found as redis-py finds it (the
        server's command table); None for a command without keys, or one redis-py
        routes by a rule of its own (SCAN on every primary, say)."""
        name = str(args[0]).upper()
        if self.command_flags.get(name) is not None:
            return None
        if name in ("EVAL", "EVALSHA"):  # its keys are counted in the command
            return args[3] if len(args) > 3 and int(args[2]) > 0 else None
        await self.initialize()  # the command table is loaded with the layout
        keys = await self.commands_parser.get_keys(*args)
        return keys[0] if keys else None


def _checked(url: str) -> SplitResult:
    """``url`` split, if its scheme is one a RedisStore takes (and, for Sentinel, if it
    names Sentinels and a service)."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ValueError(
            f"unsupported Redis URL {redact_url(url)!r}: expected one of {sorted(SCHEMES)}"
        )
    if parts.scheme.endswith("+sentinel"):
        _sentinel_target(url)
    elif misplaced := sorted(SENTINEL_PARAMETERS & {n for n, _ in parse_qsl(parts.query)}):
        raise ValueError(
            f"{', '.join(misplaced)} in {redact_url(url)!r} applies to redis+sentinel:// URLs only"
        )
    return parts


class _SentinelTarget(NamedTuple):
    sentinels: list[tuple[str, int]]
    service: str
    db: int


def _sentinel_target(url: str) -> _SentinelTarget:
    """The Sentinels, service name and db of ``scheme://[user:pw@]h1:p1,h2:p2/service/db``.

    What redis-py's ``Sentinel(...).master_for(service, db=...)`` takes, in one URL:
    every Sentinel in the host list (port 26379 if left out), then the name the
    Sentinels know the primary by, then the database number (0 if left out).
    """
    parts = urlsplit(url)
    hosts = parts.netloc.rpartition("@")[2]
    service, _, db = parts.path.strip("/").partition("/")
    try:
        sentinels = [_address(each) for each in hosts.split(",")]
        number = int(db or 0)
    except ValueError:
        sentinels, number = [], -1
    if not sentinels or not service or "/" in db or number < 0:
        raise ValueError(
            f"unsupported Sentinel URL {redact_url(url)!r}: expected "
            f"{parts.scheme}://host:26379,host2:26379/service_name/db, as in "
            f"{parts.scheme}://sentinel1:26379,sentinel2:26379/mymaster/0"
        )
    return _SentinelTarget(sentinels, service, number)


def _address(text: str) -> tuple[str, int]:
    """``host:port``, ``host`` or ``[v6]:port`` as a pair; ValueError if malformed."""
    if text.startswith("["):
        host, _, port = text[1:].partition("]")
        port = port.removeprefix(":")
    else:
        host, _, port = text.partition(":")
    if not host:
        raise ValueError(f"no host in {text!r}")
    return host, int(port) if port else SENTINEL_PORT


def _sentinel_client(url: str, options: dict[str, Any]) -> _Server:
    """A client of the primary that the Sentinels of ``url`` name, asked on each connect.

    The user, password and other query parameters in the URL are the data servers',
    parsed as redis-py parses a one-server URL; ``sentinel_username`` and
    ``sentinel_password`` are the Sentinels'. With ``rediss+sentinel://`` both the
    Sentinels and the data servers are reached over TLS, with the same ``ssl_*`` options.
    """
    target = _sentinel_target(url)
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    own = {
        name.removeprefix("sentinel_"): value
        for name, value in query
        if name in SENTINEL_PARAMETERS
    }
    rest = urlencode([(name, value) for name, value in query if name not in SENTINEL_PARAMETERS])
    userinfo, at, _ = parts.netloc.rpartition("@")
    scheme = parts.scheme.removesuffix("+sentinel")
    data: dict[str, Any] = dict(parse_url(f"{scheme}://{userinfo}{at}localhost/{target.db}?{rest}"))
    data.pop("host", None)
    data.pop("port", None)
    tls = data.pop("connection_class", None) is SSLConnection
    tls_options = {name: value for name, value in data.items() if name.startswith("ssl_")}
    sentinel_options: dict[str, Any] = {
        "socket_connect_timeout": options["socket_connect_timeout"],
        "socket_timeout": options["socket_timeout"],
        **own,
        **({"ssl": True, **tls_options} if tls else {}),
    }
    sentinel = Sentinel(target.sentinels, sentinel_kwargs=sentinel_options)
    client = sentinel.master_for(target.service, redis_class=_Server, ssl=tls, **data, **options)
    client.sentinel_manager = sentinel
    return cast(_Server, client)


def _replica_wait(
    replicas: int, timeout_ms: int | None, socket_timeout: float
) -> ReplicaWait | None:
    """Check ``wait_for_replicas`` and ``wait_timeout_ms``; None when not waiting.

    The wait defaults to half of ``socket_timeout`` and must be shorter than it, or the
    socket would time out before WAIT answers.
    """
    if replicas < 0:
        raise ValueError(f"wait_for_replicas must be 0 or more, got {replicas}")
    if replicas == 0:
        return None
    limit = int(socket_timeout * 1000)
    # int(): create_store passes an option without a typed default as its query text.
    timeout_ms = max(1, limit // 2) if timeout_ms is None else int(timeout_ms)
    if not 0 < timeout_ms < limit:
        raise ValueError(
            f"wait_timeout_ms={timeout_ms} must be above 0 and below socket_timeout "
            f"({limit} ms), so that WAIT answers before the socket times out"
        )
    return ReplicaWait(replicas, timeout_ms)


async def open_client(
    url: str,
    *,
    connect_timeout: float,
    socket_timeout: float,
    max_connections: int,
    wait_for_replicas: int = 0,
    wait_timeout_ms: int | None = None,
) -> Client:
    """Open a client on ``url`` as RedisStore does (its timeouts, one retry on a broken
    connection), initialized if a cluster; with ``wait_for_replicas``, each write waits
    for that many replicas to acknowledge it (``ReplicaWait``)."""
    wait = _replica_wait(wait_for_replicas, wait_timeout_ms, socket_timeout)
    parts = _checked(url)
    options: dict[str, Any] = {
        "socket_connect_timeout": connect_timeout,
        "socket_timeout": socket_timeout,
        "max_connections": max_connections,
        # One retry on a broken connection (Redis restarted, idle socket dropped), none
        # after a timeout: a call waits about socket_timeout at most (twice on a
        # cluster, whose client retries once more after refreshing its node map).
        "retry": Retry(NoBackoff(), 1, supported_errors=(ConnectionError,)),
    }
    plain_url = url.replace("+cluster", "", 1)
    client: _Server | _Cluster
    if parts.scheme.endswith("+sentinel"):
        client = _sentinel_client(url, options)
    elif "+cluster" not in parts.scheme:
        pool = ConnectionPool.from_url(plain_url, **options)
        client = cast(_Server, _Server.from_pool(pool))
    else:
        # Learn the topology before any concurrent use: redis-py 8.1 can break
        # connections that commands open while a fresh cluster client initializes.
        client = cast(_Cluster, await _Cluster.from_url(plain_url, **options).initialize())
    client.replica_wait = wait
    return client


def _replica_wait_of(client: Client) -> ReplicaWait | None:
    """The wait a client built by ``open_client`` does after writes; None for others."""
    return client.replica_wait if isinstance(client, _Server | _Cluster) else None


def _where(url: str, parts: SplitResult) -> str:
    """Where ``url`` leads, for messages: an address, a socket path, or Sentinels."""
    if parts.scheme.endswith("+sentinel"):
        target = _sentinel_target(url)
        hosts = ",".join(f"{host}:{port}" for host, port in target.sentinels)
        return f"the primary of {target.service!r} named by Sentinel {hosts}"
    return f"{parts.hostname}:{parts.port or 6379}" if parts.hostname else parts.path


class _Pool(NamedTuple):
    client: Client
    gate: asyncio.Semaphore | None  # one permit per connection allowed; None: the caller's


class RedisConnection:
    """One store's clients: opened lazily per event loop from a URL, or the caller's own."""

    def __init__(
        self,
        url: str,
        client: Client | None,
        *,
        connect_timeout: float,
        socket_timeout: float,
        max_connections: int,
        wait_for_replicas: int = 0,
        wait_timeout_ms: int | None = None,
    ) -> None:
        """Check ``url`` now, connect on first use; a ``client`` passed in is never closed.

        With ``wait_for_replicas`` N > 0 every write waits (``WAIT``) until N replicas
        have it, up to ``wait_timeout_ms`` (half ``socket_timeout`` by default); with
        fewer, the write is not acknowledged: StoreUnavailable. Only for clients built
        from the URL: a client passed in is used as it is.
        """
        parts = _checked(url)
        _replica_wait(wait_for_replicas, wait_timeout_ms, socket_timeout)
        if client is not None and wait_for_replicas:
            raise ValueError(
                "wait_for_replicas needs a client built from a URL; a client passed in "
                "is used as it is"
            )
        self._url = url
        self._where = "the given client" if client else _where(url, parts)
        self._timeout = socket_timeout
        self._options: dict[str, Any] = {
            "connect_timeout": connect_timeout,
            "socket_timeout": socket_timeout,
            "max_connections": max_connections,
            "wait_for_replicas": wait_for_replicas,
            "wait_timeout_ms": wait_timeout_ms,
        }
        self._given = None if client is None else _Pool(client, None)
        self._pools: LoopLocal[_Pool] = LoopLocal(self._open, lambda pool: pool.client.aclose())

    async def _open(self) -> _Pool:
        client = await open_client(self._url, **self._options)
        return _Pool(client, asyncio.Semaphore(self._options["max_connections"]))

    @asynccontextmanager
    async def use(self, *, gated: bool = True) -> AsyncIterator[Client]:
        """This event loop's client, for one call; any driver error becomes StoreUnavailable.

        redis-py 8 sometimes returns normally from a command whose task was cancelled,
        dropping the cancellation; a call that ends that way raises CancelledError, so
        a cancelled request or a stopping sweeper really stops.
        """
        task = asyncio.current_task()
        requested = task.cancelling() if task is not None else 0
        with unavailable(self._where):
            pool = self._given or await self._pools.get()
            if pool.gate is None or not gated:
                yield pool.client
            else:
                if pool.gate.locked():  # queue, for a while; a free permit needs no timer
                    async with asyncio.timeout(self._timeout):
                        await pool.gate.acquire()
                else:
                    await pool.gate.acquire()
                try:
                    yield pool.client
                finally:
                    pool.gate.release()
        if task is not None and task.cancelling() > requested:
            raise asyncio.CancelledError

    async def close(self) -> None:
        """Close the clients opened here, in this event loop; a given client stays open."""
        with unavailable(self._where):
            await self._pools.close()


_SHAS: dict[str, str] = {}
"""Each script's SHA1, computed once (redis-py's ``register_script`` hashes per call)."""


async def run_script(
    client: Client, script: str, keys: Sequence[bytes | str], args: Sequence[Any]
) -> Any:
    """Run ``script`` by its SHA1 (EVALSHA); a server that does not have it yet, or no
    longer (a restart, SCRIPT FLUSH), is sent the script first (NOSCRIPT)."""
    sha = _SHAS.get(script)
    if sha is None:
        sha = _SHAS[script] = hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()
    try:
        return await client.evalsha(sha, len(keys), *keys, *args)
    except NoScriptError:
        await client.script_load(script)
        return await client.evalsha(sha, len(keys), *keys, *args)


async def each(client: Client, command: str, names: Sequence[bytes | str], *args: Any) -> list[Any]:
    """Run ``command name *args`` for every name in one pipeline (one trip per node)."""
    if not names:
        return []
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.execute_command(command, name, *args)
    return list(await pipe.execute())


async def eval_by_slot(
    client: Client, script: str, names: Sequence[bytes | str], *args: Any
) -> int:
    """Run ``script`` over ``names`` then ``args``, once per cluster slot; sum the results.

    While a slot is being migrated, its keys are split between two primaries and a
    script over several of them is refused (TRYAGAIN, or ASK); a slot that moved since
    the client last looked answers MOVED. Such a slot's script then runs once per key,
    following the redirection, since one key is always wholly on one node: the outcome
    is the same, as the script treats each key on its own.
    """
    ran = await eval_groups(client, script, names, lambda group: args)
    return sum(int(result) for _, result in ran)


ArgsOf = Callable[[Sequence[bytes | str]], Sequence[Any]]
"""The ARGV of a script run over a group of keys, given those keys."""


async def eval_groups(
    client: Client, script: str, names: Sequence[bytes | str], args_of: ArgsOf
) -> list[tuple[Sequence[bytes | str], Any]]:
    """Run ``script`` over ``names`` with ``args_of(keys)``, once per cluster slot (once in
    all on one server), in one pipeline, each write then WAITed for if the client asks;
    return each group of keys with its script's result. A slot on the move runs once per
    key, as ``eval_by_slot`` says."""
    if not names:
        return []
    wait = _replica_wait_of(client)
    if isinstance(client, RedisCluster):
        return await _eval_on_cluster(client, script, names, args_of, wait)
    pipe = client.pipeline(transaction=False)
    pipe.execute_command("EVAL", script, len(names), *names, *args_of(names))
    if wait is not None:
        pipe.execute_command("WAIT", wait.replicas, wait.timeout_ms)
    ran, *acknowledged = await pipe.execute()
    if wait is not None:
        wait.check(acknowledged[0])
    return [(names, ran)]


async def _eval_on_cluster(
    client: RedisCluster,
    script: str,
    names: Sequence[bytes | str],
    args_of: ArgsOf,
    wait: ReplicaWait | None,
) -> list[tuple[Sequence[bytes | str], Any]]:
    """``eval_groups`` on a cluster: one pipeline, a script per slot, then a WAIT on each
    primary that ran some (on the connection that carried them)."""
    groups: dict[int, list[bytes | str]] = {}
    for name in names:
        groups.setdefault(client.keyslot(name), []).append(name)
    pipe = client.pipeline(transaction=False)
    for group in groups.values():
        pipe.execute_command("EVAL", script, len(group), *group, *args_of(group))
    if wait is not None:
        owners = {
            _owner(client, group[0]).name: _owner(client, group[0]) for group in groups.values()
        }
        for node in owners.values():
            pipe.execute_command("WAIT", wait.replicas, wait.timeout_ms, target_nodes=node)
    results = await pipe.execute(raise_on_error=False, allow_redirections=False)
    ran: list[tuple[Sequence[bytes | str], Any]] = []
    for group, result in zip(groups.values(), results, strict=False):
        if _slot_on_the_move(result):
            for name in group:
                ran.append(([name], await _eval_one(client, script, name, args_of([name]), wait)))
        elif isinstance(result, Exception):
            raise result
        else:
            ran.append((group, result))
    for acknowledged in results[len(groups) :]:
        if isinstance(acknowledged, Exception):
            raise acknowledged
        assert wait is not None  # a result past the scripts' is a WAIT's
        wait.check(acknowledged)
    return ran


async def _eval_one(
    client: RedisCluster,
    script: str,
    name: bytes | str,
    args: Sequence[Any],
    wait: ReplicaWait | None,
) -> Any:
    """Run ``script`` over the one key ``name`` on its primary, then WAIT if asked."""
    waits = [] if wait is None else [("WAIT", wait.replicas, wait.timeout_ms)]
    ran, *acknowledged = await on_key_owner(client, name, ("EVAL", script, 1, name, *args), *waits)
    if wait is not None:
        wait.check(acknowledged[0])
    return ran


def _slot_on_the_move(result: object) -> bool:
    """Whether a multi-key command failed only because its slot is being migrated."""
    if isinstance(result, ClusterDownError):
        return False
    return isinstance(result, TryAgainError | AskError | ClusterCrossSlotError | ClusterError)


async def on_key_owner(
    client: RedisCluster,
    key: bytes | str,
    *commands: Sequence[Any],
    options: dict[str, Any] | None = None,
) -> list[Any]:
    """Run ``commands`` in order, on one connection, on the primary that holds ``key`` now;
    return their results. ``options`` go with the first command (to its reply parser).

    Follows the cluster's redirections as redis-py does for a single command, with one
    difference: the ASKING that an ASK redirection needs goes on the same connection,
    just before the commands. (redis-py sends it on whichever pooled connection is free,
    so under load the command may arrive without it, bounce back with MOVED, and end in
    "TTL exhausted".) A node that fails or a cluster that is down is retried as often as
    the client's ``retry`` says, after re-learning the layout, as redis-py does.
    """
    attempts = 1 + client.retry.get_retries()
    for attempt in range(attempts):
        try:
            return await _redirected(client, key, commands, options or {})
        except (MaxConnectionsError, BusyLoadingError):
            raise
        except (ConnectionError, TimeoutError, ClusterDownError, SlotNotCoveredError) as exc:
            client._initialize = True  # as redis-py does: the next call re-learns the layout
            if attempt + 1 == attempts:
                raise
            if isinstance(exc, ClusterDownError):
                await asyncio.sleep(0.25)
    raise AssertionError("unreachable: the last attempt returns or raises")


async def _redirected(
    client: RedisCluster,
    key: bytes | str,
    commands: Sequence[Sequence[Any]],
    options: dict[str, Any],
) -> list[Any]:
    """One attempt of ``on_key_owner``: follow MOVED, ASK and TRYAGAIN up to the client's
    redirection limit; raise the first error among the results."""
    await client.initialize()  # a no-op unless a failed node asked for a new layout
    node: ClusterNode | None = _owner(client, key)
    asking = False
    for _ in range(client.RedisClusterRequestTTL):
        if node is None:
            break
        sent = [PipelineCommand(0, "ASKING")] if asking else []
        sent += [
            PipelineCommand(n, *command, **(options if n == 1 else {}))
            for n, command in enumerate(commands, 1)
        ]
        await node.execute_pipeline(sent)
        results = [command.result for command in sent[len(sent) - len(commands) :]]
        first = results[0]
        if isinstance(first, MovedError):
            await client.nodes_manager.move_slot(first)
            node, asking = _owner(client, key), False
        elif isinstance(first, AskError):
            node, asking = client.get_node(first.host, first.port), True
        elif isinstance(first, TryAgainError):
            await asyncio.sleep(0.05)
            node, asking = _owner(client, key), False
        else:
            for result in results:
                if isinstance(result, Exception):
                    raise result
            return results
    raise ClusterError(f"the slot of {key!r} kept moving: redirected too many times")


def _owner(client: RedisCluster, key: bytes | str) -> ClusterNode:
    """The primary that serves ``key``'s slot, as the client knows the layout now."""
    return client.nodes_manager.get_node_from_slot(client.keyslot(key))


async def scan(client: Client, prefix: str, size: int) -> AsyncIterator[list[bytes]]:
    """Yield the keys starting with ``prefix`` (taken literally) in lists of at most ``size``.

    Uses SCAN, never KEYS; on a cluster the client scans every primary.
    """
    pattern = re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + "*"
    batch: list[bytes] = []
    async for name in client.scan_iter(match=pattern, count=size):
        batch.append(name)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch

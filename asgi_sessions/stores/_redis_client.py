"""How RedisStore reaches Redis: a client per event loop, built from a URL or given.

Kept apart from the store so that it reads as keys and commands. Here:

- A URL builds a client for one server (``redis://``, ``rediss://``, ``unix://``) or for
  a Redis Cluster (``redis+cluster://``, ``rediss+cluster://``), once per event loop.
- A cluster client sends each keyed command through ``on_key_owner``: one connection
  to the slot's primary, ASKING on that same connection when a slot is being migrated.
- A cluster client opens at most ``max_connections`` per node and refuses the next one
  instead of waiting, so on a cluster a gate lets that many calls run at once and
  queues the rest (up to ``socket_timeout``), as the one-server connection pool does.
- Every driver error becomes ``StoreUnavailable`` (a refused value ``ValueError``), so
  nothing of redis leaks out.
- Batches go in one pipeline: one round trip per node, one script call per slot, or
  one per key while the slot is being migrated between primaries.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, PipelineCommand, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
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
    RedisClusterException,
    RedisError,
    SlotNotCoveredError,
    TimeoutError,
    TryAgainError,
)

from asgi_sessions.exceptions import SessionError, StoreUnavailable
from asgi_sessions.stores._loop import LoopLocal

__all__ = [
    "SCHEMES",
    "Client",
    "RedisConnection",
    "each",
    "eval_by_slot",
    "on_key_owner",
    "scan",
    "unavailable",
]

Client = Redis | RedisCluster
SCHEMES = {"redis", "rediss", "unix", "redis+cluster", "rediss+cluster"}
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


_KEY_FIRST = frozenset(
    {"DEL", "EXISTS", "HDEL", "HGET", "HGETALL", "HMGET", "HSET", "PEXPIRE", "UNLINK"}
    | {"ZADD", "ZRANGE", "ZRANGEBYSCORE", "ZREM", "ZSCORE"}
)
"""Commands the store sends whose first argument is a key (any other keys share its slot)."""


def _first_key(args: Sequence[Any]) -> Any | None:
    """The key that routes a command the store sends; None for other commands."""
    name = str(args[0]).upper()
    if name in ("EVAL", "EVALSHA"):
        return args[3] if len(args) > 3 and int(args[2]) > 0 else None
    return args[1] if name in _KEY_FIRST and len(args) > 1 else None


class _Cluster(RedisCluster):
    """The cluster client a URL builds: each keyed command goes through ``on_key_owner``,
    so an ASK redirection during a slot migration is followed correctly under load.

    Other commands (SCAN on each node, SCRIPT LOAD on every primary) go as redis-py
    sends them.
    """

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        key = _first_key(args)
        if key is None or "target_nodes" in kwargs:
            return await super().execute_command(*args, **kwargs)
        (result,) = await on_key_owner(self, key, args, options=kwargs)
        return result


class _Pool(NamedTuple):
    client: Client
    gate: asyncio.Semaphore | None  # on a cluster: one permit per connection allowed


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
    ) -> None:
        """Check ``url`` now, connect on first use; a ``client`` passed in is never closed."""
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES:
            raise ValueError(f"unsupported Redis URL {url!r}: expected one of {sorted(SCHEMES)}")
        self._url, self._cluster = url.replace("+cluster", "", 1), "+cluster" in parts.scheme
        where = f"{parts.hostname}:{parts.port or 6379}" if parts.hostname else parts.path
        self._where = "the given client" if client else where
        self._timeout = socket_timeout
        self._options: dict[str, Any] = {
            "socket_connect_timeout": connect_timeout,
            "socket_timeout": socket_timeout,
            "max_connections": max_connections,
            # One retry on a broken connection (Redis restarted, idle socket dropped), none
            # after a timeout: a call waits about socket_timeout at most (twice on a
            # cluster, whose client retries once more after refreshing its node map).
            "retry": Retry(NoBackoff(), 1, supported_errors=(ConnectionError,)),
        }
        self._given = None if client is None else _Pool(client, None)
        self._pools: LoopLocal[_Pool] = LoopLocal(self._open, lambda pool: pool.client.aclose())

    async def _open(self) -> _Pool:
        if not self._cluster:
            pool = BlockingConnectionPool.from_url(
                self._url, timeout=self._timeout, **self._options
            )
            return _Pool(Redis.from_pool(pool), None)
        # Learn the topology before any concurrent use: redis-py 8.1 can break
        # connections that commands open while a fresh cluster client initializes.
        client = await _Cluster.from_url(self._url, **self._options).initialize()
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
                async with asyncio.timeout(self._timeout):
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
    groups: dict[int, list[bytes | str]] = {}
    for name in names:
        slot = client.keyslot(name) if isinstance(client, RedisCluster) else 0
        groups.setdefault(slot, []).append(name)
    if not groups:
        return 0
    if isinstance(client, RedisCluster):
        pipe: ClusterPipeline | Pipeline = client.pipeline(transaction=False)
    else:
        pipe = client.pipeline(transaction=False)
    for group in groups.values():
        pipe.execute_command("EVAL", script, len(group), *group, *args)
    if isinstance(pipe, ClusterPipeline):  # a redirected script is retried per key, below
        results = await pipe.execute(raise_on_error=False, allow_redirections=False)
    else:
        results = await pipe.execute(raise_on_error=False)
    total = 0
    for group, result in zip(groups.values(), results, strict=True):
        if isinstance(client, RedisCluster) and _slot_on_the_move(result):
            for name in group:
                (result,) = await on_key_owner(client, name, ("EVAL", script, 1, name, *args))
                total += result
        elif isinstance(result, Exception):
            raise result
        else:
            total += result
    return total


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

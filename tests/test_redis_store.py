"""What only the Redis store does: its key layout, native TTLs, index upkeep, SCAN, cluster slots.

The conformance suite checks the store contract; these tests look behind the store with
a plain redis-py client, on one server and on a three-primary cluster alike.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import anyio
import anyio.lowlevel
import pytest
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster

from asgi_sessions.exceptions import StoreUnavailable
from asgi_sessions.stores import create_store
from asgi_sessions.stores.base import SessionRecord
from asgi_sessions.stores.redis import RedisStore
from asgi_sessions.testing import FrozenClock
from asgi_sessions.testing.store_suite import HOUR, create_many, new_key, new_record

pytestmark = pytest.mark.anyio
pytest_plugins = ["redis_cluster"]

Client = Redis | RedisCluster
MS_PER_HOUR = 3_600_000


def micros(moment: datetime) -> bytes:
    """A datetime as the store writes it: integer microseconds since the epoch."""
    return str((moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)).encode()


def index_name(prefix: str, user_id: str) -> str:
    """The name of a user's index: the SHA-256 of the user id, whatever characters it holds."""
    return f"{prefix}u:{hashlib.sha256(user_id.encode()).hexdigest()}"


def plain_client(url: str, **options: object) -> Client:
    """A redis-py client on ``url``, for looking at what the store wrote."""
    if "+cluster" in url:
        return RedisCluster.from_url(url.replace("+cluster", ""), **options)
    pool = BlockingConnectionPool.from_url(url, timeout=5, **options)
    return Redis.from_pool(pool)


@pytest.fixture(params=["server", "cluster"])
def url(request: pytest.FixtureRequest) -> str:
    fixture = "redis_url" if request.param == "server" else "redis_cluster_url"
    value: str = request.getfixturevalue(fixture)
    return value


@pytest.fixture
async def prefix(url: str, namespace: str) -> AsyncIterator[str]:
    """This test's key prefix; its keys, and those under its hash-tagged twin, go afterwards."""
    yield f"{namespace}:"
    for used in (f"{namespace}:", f"{{{namespace}}}:"):
        async with RedisStore(url, prefix=used) as store:
            await store.clear()


@pytest.fixture
async def raw(url: str) -> AsyncIterator[Client]:
    client = plain_client(url)
    if isinstance(client, RedisCluster):
        await client.initialize()
    yield client
    await client.aclose()


@pytest.fixture
async def store(url: str, prefix: str, clock: FrozenClock) -> AsyncIterator[RedisStore]:
    async with RedisStore(url, prefix=prefix, clock=clock) as store:
        yield store


# -- layout and native expiry ---------------------------------------------------------


async def test_a_record_is_one_hash_with_exact_microseconds_and_a_version(
    store: RedisStore, raw: Client, prefix: str, clock: FrozenClock
) -> None:
    record = new_record(clock, user_id="ada", age=12.5)
    await store.create(record)
    name = f"{prefix}s:{record.key}"
    assert await raw.type(name) == b"hash"
    assert await raw.hgetall(name) == {
        b"data": record.data,
        b"user_id": b"ada",
        b"created_at": micros(record.created_at),
        b"expires_at": micros(record.expires_at),
        b"version": b"1",
    }


async def test_scripts_the_server_lost_are_sent_again(
    store: RedisStore, raw: Client, clock: FrozenClock
) -> None:
    """After a restart or SCRIPT FLUSH the server knows no script: each write sends its
    script again (NOSCRIPT) rather than failing."""
    record = new_record(clock, user_id="ada")
    await store.create(record)
    await raw.script_flush()
    changed = dataclasses.replace(record, data=b'{"n":2}', version=2)
    assert await store.update(changed, expected_version=1) is True
    await raw.script_flush()
    assert await store.destroy(record.key) is True
    await raw.script_flush()
    another = new_record(clock)
    await store.create(another)
    assert await store.read(another.key) == another


async def test_create_update_and_extend_set_a_native_ttl_of_the_lifetime_and_the_grace(
    store: RedisStore, raw: Client, prefix: str, clock: FrozenClock
) -> None:
    """Redis drops a record cleanup_grace after its expiry, as cleanup would, so a worker
    whose clock runs fast does not make Redis delete a session its neighbours hold live."""
    grace = store.cleanup_grace // timedelta(milliseconds=1)
    record = new_record(clock, lifetime=HOUR)
    name = f"{prefix}s:{record.key}"
    await store.create(record)
    assert MS_PER_HOUR + grace - 5_000 < await raw.pttl(name) <= MS_PER_HOUR + grace
    assert await store.extend_lifetime(record.key, clock() + timedelta(hours=3)) is True
    assert 3 * MS_PER_HOUR + grace - 5_000 < await raw.pttl(name) <= 3 * MS_PER_HOUR + grace
    shorter = dataclasses.replace(record, expires_at=clock() + timedelta(minutes=10))
    assert await store.update(shorter, expected_version=1) is True
    assert MS_PER_HOUR // 6 + grace - 5_000 < await raw.pttl(name) <= MS_PER_HOUR // 6 + grace


async def test_the_ttl_counts_from_the_store_clock_so_a_past_clock_keeps_records(
    url: str, raw: Client, prefix: str
) -> None:
    past = FrozenClock(FrozenClock().now.replace(year=2001))
    async with RedisStore(url, prefix=prefix, clock=past) as store:
        grace = store.cleanup_grace // timedelta(milliseconds=1)
        record = new_record(past, lifetime=60)
        await store.create(record)
        assert 55_000 + grace < await raw.pttl(f"{prefix}s:{record.key}") <= 60_000 + grace
        assert await store.read(record.key) == record


async def test_a_user_index_is_a_sorted_set_of_keys_scored_by_expiry(
    store: RedisStore, raw: Client, prefix: str, clock: FrozenClock
) -> None:
    first, second = new_record(clock, user_id="ada"), new_record(clock, user_id="ada", lifetime=60)
    await store.create(first)
    await store.create(second)
    entries = await raw.zrange(index_name(prefix, "ada"), 0, -1, withscores=True)
    assert sorted(entries) == sorted(
        (r.key.encode(), float(micros(r.expires_at))) for r in (first, second)
    )
    await store.destroy(first.key)
    moved = dataclasses.replace(second, user_id="bob")
    assert await store.update(moved, expected_version=1) is True
    assert await raw.zrange(index_name(prefix, "bob"), 0, -1) == [second.key.encode()]
    # destroy unlinks at once; a user change leaves ada's entry until it is due, since
    # a login racing it may have just written it again
    assert await raw.zrange(index_name(prefix, "ada"), 0, -1) == [second.key.encode()]
    assert await store.user_sessions("ada") == []
    clock.advance(60)
    clock.now += store.cleanup_grace
    await store.cleanup_expired_sessions()
    assert await raw.exists(index_name(prefix, "ada")) == 0


# -- the user index: stale entries -------------------------------------------------------


async def test_stale_index_entries_are_never_returned_and_cleanup_removes_them(
    store: RedisStore, raw: Client, prefix: str, clock: FrozenClock
) -> None:
    gone = new_record(clock, user_id="ada", lifetime=60)  # Redis drops it, as its TTL would
    moved = new_record(clock, user_id="ada")  # now bob's: the index missed the change
    extended = new_record(clock, user_id="ada", lifetime=60)  # lives on past its index score
    for record in (gone, moved, extended):
        await store.create(record)
    await raw.delete(f"{prefix}s:{gone.key}")
    await raw.hset(f"{prefix}s:{moved.key}", "user_id", "bob")
    later = clock() + timedelta(hours=2)
    await store.extend_lifetime(extended.key, later)
    index = index_name(prefix, "ada")
    assert await raw.zcard(index) == 3
    assert await store.user_sessions("ada") == [dataclasses.replace(extended, expires_at=later)]

    clock.advance(60)  # the entries of gone and extended are due, moved's is not
    clock.now += store.cleanup_grace  # cleanup looks at what expired that long ago
    assert await store.cleanup_expired_sessions() == 0
    entries = cast(list[tuple[bytes, float]], await raw.zrange(index, 0, -1, withscores=True))
    assert dict(entries) == {
        moved.key.encode(): float(micros(moved.expires_at)),
        extended.key.encode(): float(micros(later)),
    }

    clock.advance(HOUR)  # moved's entry is due now; its record is bob's
    await store.cleanup_expired_sessions()
    assert await raw.zrange(index, 0, -1) == [extended.key.encode()]
    clock.now = later + store.cleanup_grace
    assert await store.cleanup_expired_sessions() == 1
    assert await raw.exists(index) == 0, "an emptied index disappears"


async def test_a_revoke_keeps_the_index_entry_of_a_login_still_in_progress(
    store: RedisStore, raw: Client, prefix: str, clock: FrozenClock
) -> None:
    """A login writes the index entry before the record: a revoke that lands in between
    must leave the entry, or the new session would be live and missing from the index."""
    done = new_record(clock, user_id="ada")
    await store.create(done)
    pending = new_record(clock, user_id="ada")
    index = index_name(prefix, "ada")
    await raw.zadd(index, {pending.key: float(micros(pending.expires_at))})
    assert await store.destroy_user_sessions("ada") == 1
    assert await raw.zrange(index, 0, -1) == [pending.key.encode()]
    await raw.hset(  # the login's second step: the record itself
        f"{prefix}s:{pending.key}",
        mapping={
            "data": pending.data,
            "user_id": "ada",
            "created_at": micros(pending.created_at),
            "expires_at": micros(pending.expires_at),
            "version": 1,
        },
    )
    assert await store.user_sessions("ada") == [pending]
    assert await store.destroy_user_sessions("ada") == 1


# -- the user index: drift and its repair -----------------------------------------------


async def forget_index(raw: Client, prefix: str, user_id: str) -> None:
    """Lose a user's index and the completeness marks, as a node restarted empty would."""
    marks = [name async for name in raw.scan_iter(match=f"{prefix}m:*")]
    await raw.delete(index_name(prefix, user_id), *marks)


async def test_a_lost_index_is_scanned_around_and_rebuilt_by_repair_and_by_cleanup(
    store: RedisStore, raw: Client, prefix: str, clock: FrozenClock
) -> None:
    records = [new_record(clock, user_id="ada") for _ in range(3)]
    for record in records:
        await store.create(record)
    keys, index = {record.key for record in records}, index_name(prefix, "ada")
    await store.repair_user_index()
    await forget_index(raw, prefix, "ada")
    assert {record.key for record in await store.user_sessions("ada")} == keys

    dangling = index_name(prefix, "bob")  # an entry whose record is long gone
    await raw.zadd(dangling, {new_key(): float(micros(clock() - timedelta(hours=1)))})
    store.timeout = 0.05  # how long repair lets a login in flight land before dropping
    assert await store.repair_user_index() == 4, "3 entries restored, 1 dropped"
    assert {m.decode() for m in cast(list[bytes], await raw.zrange(index, 0, -1))} == keys
    assert await raw.exists(dangling) == 0

    await forget_index(raw, prefix, "ada")
    await store.cleanup_expired_sessions()
    assert {m.decode() for m in cast(list[bytes], await raw.zrange(index, 0, -1))} == keys
    assert await store.destroy_user_sessions("ada") == 3


class HeldUnlink(Redis):
    """A client whose ZREM waits for ``release``: a store call held between its steps."""

    arrived: asyncio.Event
    release: asyncio.Event

    async def zrem(self, name: Any, *values: Any) -> Any:
        self.arrived.set()
        await self.release.wait()
        return await super().zrem(name, *values)


async def test_a_record_leaving_a_user_never_unindexes_a_login_that_raced_it(
    redis_url: str, namespace: str, clock: FrozenClock
) -> None:
    """A logout of a session and a login of the same user on it, interleaved: the login's
    index entry must survive, or the live session could not be revoked."""
    client = cast(HeldUnlink, HeldUnlink.from_url(redis_url))
    client.arrived, client.release = asyncio.Event(), asyncio.Event()
    async with RedisStore(client=client, prefix=f"{namespace}:", clock=clock) as store:
        await store.repair_user_index()  # the index is trusted: no scan covers a miss
        record = new_record(clock, user_id="ada")
        await store.create(record)
        anonymous = dataclasses.replace(record, user_id=None)
        logout = asyncio.create_task(store.update(anonymous, expected_version=record.version))
        held = asyncio.create_task(client.arrived.wait())
        await asyncio.wait([logout, held], return_when=asyncio.FIRST_COMPLETED)
        login = dataclasses.replace(record, data=b'{"again":true}')
        assert await store.update(login, expected_version=record.version + 1)
        client.release.set()
        assert await logout
        held.cancel()
        assert [r.key for r in await store.user_sessions("ada")] == [record.key]
        assert await client.zscore(index_name(f"{namespace}:", "ada"), record.key) is not None
        assert await store.destroy_user_sessions("ada") == 1
        await store.clear()
    await client.aclose()


# -- keyspaces: a store owns exactly its own names ----------------------------------------

NEIGHBOURS = {
    "app,apps:": ("app", "apps:"),
    "a:,a:s:": ("a:", "a:s:"),
    "a:,a:u:": ("a:", "a:u:"),
    "x,xu:": ("x", "xu:"),
    "tagged": ("{x}", "{x}s:"),
}


@pytest.fixture
async def wipe(raw: Client, namespace: str) -> AsyncIterator[None]:
    """Delete afterwards every key a test made under its namespace, whatever its prefix."""
    yield
    async for name in raw.scan_iter(match=f"{namespace}*"):
        await raw.unlink(name)


@pytest.mark.usefixtures("wipe")
@pytest.mark.parametrize(("mine", "theirs"), NEIGHBOURS.values(), ids=NEIGHBOURS.keys())
async def test_stores_whose_prefixes_begin_alike_never_see_count_or_delete_each_others_keys(
    url: str, namespace: str, clock: FrozenClock, mine: str, theirs: str
) -> None:
    stores = [RedisStore(url, prefix=namespace + prefix, clock=clock) for prefix in (mine, theirs)]
    owned: list[tuple[SessionRecord, SessionRecord]] = []
    async with stores[0], stores[1]:
        for store in stores:
            live = new_record(clock, user_id="ada")
            short = new_record(clock, user_id="ada", lifetime=60)
            await store.create(live)
            await store.create(short)
            owned.append((live, short))
        for store, records in zip(stores, owned, strict=True):
            by_key = sorted(records, key=lambda r: r.key)
            assert await store.count() == 2
            assert sorted(await store.ids()) == [r.key for r in by_key]
            assert sorted([r async for r in store.all()], key=lambda r: r.key) == by_key
            assert await store.user_sessions("ada") == by_key  # created together: key order
        clock.advance(60)
        clock.now += stores[0].cleanup_grace
        for store, (live, _) in zip(stores, owned, strict=True):
            assert await store.cleanup_expired_sessions() == 1, "it swept only its own"
            assert await store.ids() == [live.key]
        for one, other in (stores, stores[::-1]):
            user_id = f"bob of {other.prefix}"
            theirs_record = new_record(clock, user_id=user_id)
            await other.create(theirs_record)
            assert await one.destroy_user_sessions(user_id) == 0
            await one.clear()
            await one.cleanup_expired_sessions()
            assert await other.read(theirs_record.key) == theirs_record
            assert await other.user_sessions(user_id) == [theirs_record]


HOSTILE_USER_IDS = {
    "hash-tag": "{ada}",
    "glob": "*?[a-z]\\",
    "colons": "u:s:ada",
    "nul": "ada\x00eve",
    "megabyte": "x" * 2**20,
}


@pytest.mark.parametrize("user_id", HOSTILE_USER_IDS.values(), ids=HOSTILE_USER_IDS.keys())
async def test_any_user_id_names_its_index_by_its_digest_alone(
    store: RedisStore, raw: Client, prefix: str, clock: FrozenClock, user_id: str
) -> None:
    record, bystander = new_record(clock, user_id=user_id), new_record(clock, user_id="ada")
    await store.create(record)
    await store.create(bystander)
    indexes = {name async for name in raw.scan_iter(match=f"{prefix}u:*")}
    assert indexes == {index_name(prefix, user_id).encode(), index_name(prefix, "ada").encode()}
    assert await store.user_sessions(user_id) == [record]
    assert await store.destroy_user_sessions(user_id) == 1
    assert await store.user_sessions("ada") == [bystander]


def test_a_record_key_that_is_not_a_digest_is_refused(clock: FrozenClock) -> None:
    store = RedisStore("redis://127.0.0.1:1", prefix="p:", clock=clock)
    for key in ("k1", "A" * 64, "a" * 63, "a" * 65, "*" * 64):
        with pytest.raises(ValueError, match="64 lowercase hex"):
            asyncio.run(store.create(new_record(clock, key=key)))


async def test_index_keys_named_by_the_raw_user_id_are_ignored_and_crash_nothing(
    store: RedisStore, raw: Client, prefix: str, clock: FrozenClock
) -> None:
    """Keys of the earlier layout ({prefix}u:<user id>) are left for the repair command."""
    record = new_record(clock, user_id="ada", lifetime=60)
    await store.create(record)
    old = [f"{prefix}u:ada", f"{prefix}u:{{ada}}*", f"{prefix}u:{'a' * 64}"]
    for name in old:
        await raw.zadd(name, {record.key: 1.0})
    try:
        assert await store.user_sessions("ada") == [record]
        assert await store.count() == 1
        assert [r async for r in store.all()] == [record]
        clock.advance(60)
        clock.now += store.cleanup_grace
        assert await store.cleanup_expired_sessions() == 1
        assert await store.destroy_user_sessions("ada") == 0
        assert await store.clear() == 0
        assert await raw.exists(*old[:2]) == 2, "keys of the old layout are not this store's"
    finally:
        for name in old:
            await raw.unlink(name)


# -- SCAN and cluster slots -------------------------------------------------------------


async def test_count_ids_and_all_scan_every_primary_past_a_thousand_keys(
    store: RedisStore, raw: Client, clock: FrozenClock
) -> None:
    records = await create_many(store, clock, 1500)
    before = await scan_calls(raw)
    assert await store.count() == 1500
    assert sorted(await store.ids()) == sorted(r.key for r in records)
    assert len([r async for r in store.all()]) == 1500
    after = await scan_calls(raw)
    assert all(after[node] > before[node] for node in before), (before, after)


async def scan_calls(raw: Client) -> dict[str, int]:
    """How many SCAN commands each primary has served (KEYS must never be used)."""
    if isinstance(raw, RedisCluster):
        stats = await raw.info("commandstats", target_nodes=raw.get_primaries())
        assert all("cmdstat_keys" not in node_stats for node_stats in stats.values())
    else:
        stats = {"server": await raw.info("commandstats")}
    return {node: info.get("cmdstat_scan", {}).get("calls", 0) for node, info in stats.items()}


def slots_of(raw: RedisCluster, node: ClusterNode) -> set[int]:
    """The slots ``node`` serves, as the client's slot map says."""
    return {slot for slot, nodes in raw.nodes_manager.slots_cache.items() if nodes[0] is node}


async def test_records_and_indexes_spread_over_every_primary_of_a_cluster(
    redis_cluster_url: str, namespace: str, clock: FrozenClock
) -> None:
    raw = await RedisCluster.from_url(redis_cluster_url.replace("+cluster", "")).initialize()
    async with raw, RedisStore(redis_cluster_url, prefix=f"{namespace}:", clock=clock) as store:
        for n in range(40):
            await store.create(new_record(clock, user_id=f"user-{n}"))
        for kind in ("s", "u"):
            holders = set()
            for node in raw.get_primaries():
                async for name in raw.scan_iter(match=f"{namespace}:{kind}:*", target_nodes=node):
                    assert raw.keyslot(name) in slots_of(raw, node)
                    holders.add(node.name)
            assert len(holders) == 3, f"{kind} keys on {holders} only"
        await store.clear()


async def test_a_prefix_with_a_hash_tag_keeps_every_key_in_one_slot_and_still_works(
    url: str, raw: Client, prefix: str, namespace: str, clock: FrozenClock
) -> None:
    tagged = f"{{{namespace}}}:"
    async with RedisStore(url, prefix=tagged, clock=clock) as store:
        expired = new_record(clock, user_id="ada", lifetime=60)
        kept, revoked = new_record(clock, user_id="ada"), new_record(clock, user_id="bob")
        for record in (expired, kept, revoked):
            await store.create(record)
        assert await store.update(dataclasses.replace(revoked, user_id="ada"), expected_version=1)
        assert await store.destroy_user_sessions("ada", keep=kept.key) == 2
        clock.advance(60)
        await store.cleanup_expired_sessions()
        if isinstance(raw, RedisCluster):
            names = [name async for name in raw.scan_iter(match=f"{tagged}*")]
            assert {raw.keyslot(name) for name in names} == {raw.keyslot(namespace)}
        assert await store.ids() == [kept.key]
        assert await store.clear() == 1


# Writes ``count`` records under ARGV[1] server-side; for the one-server million-row test only.
SEED = """
for i = 1, tonumber(ARGV[2]) do
  local name = ARGV[1] .. string.format('%064d', ARGV[3] + i)
  redis.call('HSET', name, 'data', '{}', 'created_at', ARGV[4], 'expires_at', ARGV[5],
             'version', 1)
  redis.call('PEXPIRE', name, 3600000)
end
"""


@pytest.mark.slow
async def test_a_million_records_stream_and_sweep_in_batches(
    redis_url: str, namespace: str, clock: FrozenClock
) -> None:
    prefix, total = f"{namespace}:", 1_000_000
    raw = Redis.from_url(redis_url)
    async with raw, RedisStore(redis_url, prefix=prefix, clock=clock) as store:
        try:
            now, soon = micros(clock()), micros(clock() + timedelta(minutes=30))
            for start in range(0, total, 10_000):
                await raw.eval(SEED, 0, f"{prefix}s:", 10_000, start, now, soon)
            assert sum([1 async for _ in store.all()]) == total
            clock.advance(HOUR)
            totals: list[int] = []
            removed = await store.cleanup_expired_sessions(
                batch_size=10_000, progress=totals.append
            )
            assert removed == total
            assert all(b - a <= 10_000 for a, b in zip([0, *totals], totals, strict=False))
        finally:
            await store.clear()


# -- clients, failures, cancellation, event loops -----------------------------------------


async def test_a_client_passed_in_is_used_and_left_open_by_close(
    url: str, raw: Client, prefix: str, clock: FrozenClock
) -> None:
    store = RedisStore(client=raw, prefix=prefix, clock=clock)
    record = new_record(clock)
    await store.create(record)
    await store.close()
    assert await raw.exists(f"{prefix}s:{record.key}") == 1
    assert await store.read(record.key) == record
    assert await store.clear() == 1
    with pytest.raises(TypeError, match="not both"):
        RedisStore(url, client=raw)


@pytest.mark.parametrize(
    "url",
    ["redis://127.0.0.1:1/0", "redis+cluster://127.0.0.1:1", "redis+sentinel://127.0.0.1:1/main/0"],
)
async def test_a_closed_port_raises_store_unavailable_naming_the_server(url: str) -> None:
    store = RedisStore(url, connect_timeout=1.0, socket_timeout=1.0)  # no I/O here
    with anyio.fail_after(10), pytest.raises(StoreUnavailable, match=r"127\.0\.0\.1:1\b.*check"):
        await store.read(new_key())
    await store.close()


async def test_a_cancelled_blocking_command_leaves_no_reply_on_the_pool(
    url: str, raw: Client, prefix: str, clock: FrozenClock, namespace: str
) -> None:
    # One connection in the pool: if the cancelled BLPOP kept it, or its reply stayed
    # queued on it, the store's next read would wait or get that reply (CVE-2023-28858).
    only = plain_client(url, max_connections=1, client_name=f"{namespace}-blpop")
    store = RedisStore(client=only, prefix=prefix, clock=clock)
    record = new_record(clock)
    await store.create(record)
    blocker = f"{{{prefix}s:{record.key}}}:blocker"  # same slot, so the same cluster node
    node: dict[str, Any] = {}
    if isinstance(raw, RedisCluster):
        node["target_nodes"] = raw.get_node_from_key(blocker)

    async def blpop_waiting() -> bool:
        clients = await raw.client_list(**node)
        return any(c["name"] == f"{namespace}-blpop" and c["cmd"] == "blpop" for c in clients)

    async def until(condition: Callable[[], Awaitable[bool]]) -> None:
        while not await condition():
            await anyio.sleep(0.01)

    async def blpop_gone() -> bool:
        return not await blpop_waiting()

    async def wait_on_blocker() -> None:
        await only.blpop([blocker], timeout=10)

    try:
        with anyio.fail_after(5):
            async with anyio.create_task_group() as group:
                group.start_soon(wait_on_blocker)
                await until(blpop_waiting)
                group.cancel_scope.cancel()
            assert await store.read(record.key) == record
            await until(blpop_gone)  # the cancelled connection was closed, not reused
        await raw.lpush(blocker, b"late")
        assert await store.read(record.key) == record
        assert await raw.llen(blocker) == 1, "a forgotten BLPOP took the value"
    finally:
        await raw.delete(blocker)
        await only.aclose()


# -- URLs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "rediss://user:secret@127.0.0.1:6380/1",
        "redis+cluster://127.0.0.1:7000",
        "rediss+cluster://127.0.0.1:7000",
        "redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/mymaster/0",
        "rediss+sentinel://user:secret@sentinel1,sentinel2:26380/mymaster/2?sentinel_password=x",
    ],
)
def test_create_store_builds_a_redis_store_for_every_scheme_without_connecting(url: str) -> None:
    store = create_store(url, prefix="app:", socket_timeout=1.0)
    assert isinstance(store, RedisStore)
    assert store.prefix == "app:"


async def test_a_unix_socket_url_builds_a_store_that_names_the_socket_when_down(
    tmp_path: Path,
) -> None:
    socket_path = tmp_path / "no-redis.sock"
    store = RedisStore.from_url(f"unix://{socket_path}")
    with pytest.raises(StoreUnavailable, match=str(socket_path)):
        await store.read(new_key())
    await store.close()


def test_an_unknown_scheme_is_refused_with_the_accepted_ones() -> None:
    with pytest.raises(ValueError, match="redis\\+cluster"):
        RedisStore.from_url("http://127.0.0.1:6379")


async def test_a_store_from_url_talks_to_its_server(
    url: str, prefix: str, clock: FrozenClock
) -> None:
    async with RedisStore.from_url(url, prefix=prefix, clock=clock) as store:
        record = new_record(clock)
        await store.create(record)
        assert await store.read(record.key) == record
        assert await store.clear() == 1

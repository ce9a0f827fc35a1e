"""Commands of one turn of the event loop go to Redis in one pipeline, each caller
answered with its own reply or error, on a real server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.exceptions import ResponseError

from asgi_sessions.stores._redis_client import Client, open_client
from asgi_sessions.stores._turn_batches import TurnBatches

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client(redis_url: str, namespace: str) -> AsyncIterator[Client]:
    client = await open_client(
        redis_url, connect_timeout=2.0, socket_timeout=2.0, max_connections=10
    )
    try:
        yield client
    finally:
        keys = [key async for key in client.scan_iter(f"{namespace}:*")]
        if keys:
            await client.unlink(*keys)
        await client.aclose()


def _batches(client: Client) -> TurnBatches[Any, Any]:
    batches = getattr(client, "_batches", None)
    assert isinstance(batches, TurnBatches), "a URL's one-server client batches"
    return batches


async def test_commands_of_one_turn_share_a_pipeline_and_get_their_own_replies(
    client: Client, namespace: str
) -> None:
    names = [f"{namespace}:{n}" for n in range(100)]
    await asyncio.gather(*(client.set(name, n) for n, name in enumerate(names)))
    values = await asyncio.gather(*(client.get(name) for name in names))
    assert values == [str(n).encode() for n in range(100)]
    assert 2 <= _batches(client).batches < 200


async def test_a_lone_command_goes_on_its_own(client: Client, namespace: str) -> None:
    for n in range(3):
        await client.set(f"{namespace}:{n}", n)
    assert await client.get(f"{namespace}:2") == b"2"
    assert _batches(client).batches == 0


async def test_an_error_goes_to_its_caller_only(client: Client, namespace: str) -> None:
    await client.set(f"{namespace}:text", "not a number")
    results = await asyncio.gather(
        client.incr(f"{namespace}:counter"),
        client.incr(f"{namespace}:text"),
        client.incr(f"{namespace}:counter"),
        return_exceptions=True,
    )
    assert results[0] == 1 and results[2] == 2
    assert isinstance(results[1], ResponseError)
    assert _batches(client).batches == 1


def _one_under_way_then_two(
    client: Client, namespace: str
) -> tuple[asyncio.Future[Any], asyncio.Future[Any], asyncio.Future[Any]]:
    """A GET under way, then two SETs in one turn (a and b), which go as one batch."""
    under_way = asyncio.ensure_future(client.get(f"{namespace}:x"))
    first = asyncio.ensure_future(client.set(f"{namespace}:a", 1))
    second = asyncio.ensure_future(client.set(f"{namespace}:b", 2))
    return under_way, first, second


async def test_a_cancelled_caller_leaves_the_others_answered(
    client: Client, namespace: str
) -> None:
    under_way, leader, follower = _one_under_way_then_two(client, namespace)
    await asyncio.sleep(0)  # the leader waits for the turn; the follower has joined
    leader.cancel()
    assert await asyncio.wait_for(follower, 5) is True
    with pytest.raises(asyncio.CancelledError):
        await leader
    assert await under_way is None
    assert await client.get(f"{namespace}:b") == b"2"


async def test_a_command_sent_still_runs_when_its_caller_gives_up(
    client: Client, namespace: str
) -> None:
    under_way, first, given_up = _one_under_way_then_two(client, namespace)
    await asyncio.sleep(0)
    while not _batches(client).batches:  # the batch is on its way
        await asyncio.sleep(0)
    given_up.cancel()
    assert list(await asyncio.wait_for(asyncio.gather(under_way, first), 5)) == [None, True]
    assert await client.get(f"{namespace}:b") == b"2"

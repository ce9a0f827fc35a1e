"""The batching of one turn's calls: who is served together, and who hears what."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from asgi_sessions.stores._turn_batches import TurnBatches

pytestmark = pytest.mark.anyio


class Doubler:
    """Doubles numbers, one at a time or a batch at once, each after a turn of the loop
    (as a server's reply would come), recording how it was asked."""

    def __init__(self) -> None:
        self.lone: list[int] = []
        self.batches: list[list[int]] = []
        self.failing: BaseException | None = None
        self.held = asyncio.Event()
        self.held.set()

    async def one(self, item: int) -> int:
        self.lone.append(item)
        await asyncio.sleep(0)
        return item * 2

    async def many(self, items: list[int]) -> Sequence[int | BaseException]:
        self.batches.append(items)
        await self.held.wait()
        await asyncio.sleep(0)
        if self.failing is not None:
            raise self.failing
        return [ValueError(f"odd: {item}") if item < 0 else item * 2 for item in items]


@pytest.fixture
def doubler() -> Doubler:
    return Doubler()


@pytest.fixture
def batches(doubler: Doubler) -> TurnBatches[int, int]:
    return TurnBatches(doubler.one, doubler.many)


async def test_calls_made_while_one_is_under_way_are_served_together(
    doubler: Doubler, batches: TurnBatches[int, int]
) -> None:
    assert await asyncio.gather(*(batches.run(n) for n in range(5))) == [0, 2, 4, 6, 8]
    assert doubler.lone == [0] and doubler.batches == [[1, 2, 3, 4]]
    assert batches.batches == 1


async def test_calls_one_after_another_are_served_alone(
    doubler: Doubler, batches: TurnBatches[int, int]
) -> None:
    assert [await batches.run(n) for n in range(3)] == [0, 2, 4]
    assert doubler.lone == [0, 1, 2] and doubler.batches == []


async def test_an_item_error_goes_to_its_caller_and_a_batch_failure_to_all(
    doubler: Doubler, batches: TurnBatches[int, int]
) -> None:
    results = await asyncio.gather(*(batches.run(n) for n in (0, 1, -1, 2)), return_exceptions=True)
    assert results[:2] == [0, 2] and results[3] == 4 and isinstance(results[2], ValueError)
    doubler.failing = ConnectionError("gone")
    results = await asyncio.gather(*(batches.run(n) for n in (0, 1, 2)), return_exceptions=True)
    assert results[0] == 0  # alone, not in the batch that failed
    assert all(isinstance(result, ConnectionError) for result in results[1:])


async def test_a_leader_cancelled_while_waiting_for_its_turn_still_sends_the_others(
    doubler: Doubler, batches: TurnBatches[int, int]
) -> None:
    under_way = asyncio.ensure_future(batches.run(0))
    leader = asyncio.ensure_future(batches.run(1))
    followers = [asyncio.ensure_future(batches.run(n)) for n in (2, 3)]
    await asyncio.sleep(0)  # the leader waits for the turn; the followers join
    leader.cancel()
    assert await asyncio.wait_for(asyncio.gather(under_way, *followers), 5) == [0, 4, 6]
    with pytest.raises(asyncio.CancelledError):
        await leader
    assert doubler.batches == [[2, 3]]


async def test_a_caller_cancelled_during_its_batch_leaves_the_rest_answered(
    doubler: Doubler, batches: TurnBatches[int, int]
) -> None:
    doubler.held.clear()
    calls = [asyncio.ensure_future(batches.run(n)) for n in (0, 1, 2, 3)]
    while not doubler.batches:  # the batch is being served
        await asyncio.sleep(0)
    calls[2].cancel()
    doubler.held.set()
    answered = await asyncio.wait_for(asyncio.gather(calls[0], calls[1], calls[3]), 5)
    assert list(answered) == [0, 2, 6]
    assert calls[2].cancelled()
    assert doubler.batches == [[1, 2, 3]]

"""Per-name locks of one process: the writers of one session take turns, first come,
first served, one at a time; one cancelled while it waits neither keeps nor blocks a
turn; and a bounded wait ends in StoreUnavailable."""

from __future__ import annotations

import asyncio

import pytest

from asgi_sessions.exceptions import StoreUnavailable
from asgi_sessions.locks import LocalLocks

pytestmark = pytest.mark.anyio


class Writers:
    """Writers of one key, each a task that enters its turn, notes it, and leaves when
    told to."""

    def __init__(self, turns: LocalLocks, key: str = "k") -> None:
        self.turns, self.key = turns, key
        self.entered: list[int] = []
        self.inside = 0
        self.most_inside = 0
        self.leave: dict[int, asyncio.Event] = {}
        self.tasks: dict[int, asyncio.Task[None]] = {}

    def start(self, n: int) -> None:
        self.leave[n] = asyncio.Event()
        self.tasks[n] = asyncio.create_task(self._write(n))

    async def _write(self, n: int) -> None:
        async with self.turns.hold(self.key):
            self.entered.append(n)
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
            try:
                await self.leave[n].wait()
            finally:
                self.inside -= 1

    async def finish(self) -> None:
        for event in self.leave.values():
            event.set()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)


async def settle() -> None:
    """Let every task that can run, run until it waits."""
    for _ in range(10):
        await asyncio.sleep(0)


async def test_writers_of_one_key_enter_one_at_a_time_in_order_of_arrival() -> None:
    writers = Writers(LocalLocks())
    for n in range(6):
        writers.start(n)
        await settle()
    for n in range(6):
        assert writers.entered == list(range(n + 1))
        writers.leave[n].set()
        await settle()
    await writers.finish()
    assert writers.entered == list(range(6))
    assert writers.most_inside == 1
    assert writers.turns._turns == {}  # nothing is kept once every writer has left


async def test_a_writer_arriving_during_a_handover_waits_behind_the_one_handed_the_turn() -> None:
    writers = Writers(LocalLocks())
    writers.start(0)
    writers.start(1)
    await settle()
    writers.leave[0].set()
    await asyncio.sleep(0)  # 0 leaves and hands the turn to 1, which has not run yet...
    writers.start(2)  # ...and 2 arrives meanwhile
    await settle()
    assert writers.entered == [0, 1]
    writers.leave[1].set()
    await settle()
    await writers.finish()
    assert writers.entered == [0, 1, 2]
    assert writers.most_inside == 1


@pytest.mark.parametrize("when", ["while-waiting", "just-handed-the-turn"])
async def test_a_cancelled_writer_neither_keeps_nor_blocks_a_turn(when: str) -> None:
    writers = Writers(LocalLocks())
    for n in range(3):
        writers.start(n)
        await settle()
    if when == "while-waiting":
        writers.tasks[1].cancel()
        await settle()
        assert writers.entered == [0]
        writers.leave[0].set()
    else:
        writers.leave[0].set()
        await asyncio.sleep(0)  # 0 leaves and hands the turn to 1, which has not run yet
        writers.tasks[1].cancel()
    await settle()
    assert writers.tasks[1].cancelled()
    assert writers.entered == [0, 2]
    await writers.finish()
    assert writers.most_inside == 1
    assert writers.turns._turns == {}


async def test_writers_of_different_keys_do_not_wait_for_each_other() -> None:
    turns = LocalLocks()
    first, second = Writers(turns, "a"), Writers(turns, "b")
    first.start(0)
    second.start(0)
    await settle()
    assert first.entered == second.entered == [0]
    await first.finish()
    await second.finish()
    assert turns._turns == {}


async def test_a_bounded_wait_past_its_time_is_store_unavailable_and_frees_its_place() -> None:
    locks = LocalLocks()
    async with locks.hold("ada"):
        with pytest.raises(StoreUnavailable, match=r"not free within 0\.05 s"):
            async with locks.hold("ada", wait_at_most=0.05):
                pass
    async with locks.hold("ada", wait_at_most=0.05):
        pass
    assert locks._turns == {}

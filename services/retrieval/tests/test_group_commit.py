"""The group commit helper, with a recording write in place of a table."""

from __future__ import annotations

import asyncio

import pytest

from bruno_core import NotFound, Unavailable
from bruno_retrieval.background import BackgroundTasks
from bruno_retrieval.group_commit import GroupCommit, Pending


class Gate:
    def __init__(self) -> None:
        self.reached = asyncio.Event()  # a write waits here
        self.opened = asyncio.Event()


class Table:
    """Records each batch it is given; answers each item with its length, or fails."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.failing: Exception | None = None
        self.gates: list[Gate] = []  # each write waits at the next one, if any

    def hold(self, writes: int) -> list[Gate]:
        """Make the next ``writes`` writes wait until their gate opens."""
        self.gates = [Gate() for _ in range(writes)]
        return list(self.gates)

    async def write(self, batch: list[Pending[str, int]]) -> None:
        if self.gates:
            gate = self.gates.pop(0)
            gate.reached.set()
            await gate.opened.wait()
        self.batches.append([pending.item for pending in batch])
        if self.failing is not None:
            raise self.failing
        for pending in batch:
            if pending.item == "missing":
                pending.settle(NotFound("no such thing"))
            else:
                pending.settle(len(pending.item))


@pytest.fixture
def table() -> Table:
    return Table()


@pytest.fixture
def tasks() -> BackgroundTasks:
    return BackgroundTasks()


async def wait_until_queued(commits: GroupCommit[str, int], count: int) -> None:
    for _ in range(1000):
        if len(commits._queue) == count:
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"never {count} waiting")


async def test_items_arriving_during_a_commit_are_written_together_in_the_next(
    table: Table, tasks: BackgroundTasks
) -> None:
    commits: GroupCommit[str, int] = GroupCommit(asyncio.Lock(), table.write, tasks)
    [gate] = table.hold(1)
    first = asyncio.ensure_future(commits.submit("a"))
    await gate.reached.wait()
    later = [asyncio.ensure_future(commits.submit(item)) for item in ("bb", "ccc", "missing")]
    await wait_until_queued(commits, 3)
    gate.opened.set()

    assert await first == 1
    outcomes = await asyncio.gather(*later, return_exceptions=True)

    assert table.batches == [["a"], ["bb", "ccc", "missing"]]
    assert outcomes[:2] == [2, 3]
    assert isinstance(outcomes[2], NotFound)


async def test_a_batch_holds_at_most_max_batch_items_and_one_per_key(
    table: Table, tasks: BackgroundTasks
) -> None:
    lock = asyncio.Lock()
    commits: GroupCommit[str, int] = GroupCommit(
        lock, table.write, tasks, max_batch=2, key=lambda item: item[0]
    )
    await lock.acquire()  # another writer: everything submitted meanwhile waits
    waiting = [asyncio.ensure_future(commits.submit(i)) for i in ("a1", "a2", "b1", "c1")]
    await wait_until_queued(commits, 4)
    lock.release()

    assert await asyncio.gather(*waiting) == [2, 2, 2, 2]
    # "a2" shares its key with "a1": it waits for the next round, as does "c1" (two per batch).
    assert table.batches == [["a1", "b1"], ["a2", "c1"]]


async def test_a_failed_write_fails_every_item_of_its_batch_with_that_error(
    table: Table, tasks: BackgroundTasks
) -> None:
    commits: GroupCommit[str, int] = GroupCommit(asyncio.Lock(), table.write, tasks)
    table.failing = OSError("disk full")

    outcomes = await asyncio.gather(
        commits.submit("a"), commits.submit("b"), return_exceptions=True
    )

    assert [str(outcome) for outcome in outcomes] == ["disk full", "disk full"]


async def test_a_caller_giving_up_does_not_stop_the_commit_of_the_others(
    table: Table, tasks: BackgroundTasks
) -> None:
    lock = asyncio.Lock()
    commits: GroupCommit[str, int] = GroupCommit(lock, table.write, tasks)
    [gate] = table.hold(1)
    await lock.acquire()  # another writer: the next two wait, then go together
    gives_up = asyncio.ensure_future(commits.submit("gone"))
    stays = asyncio.ensure_future(commits.submit("kept"))
    await wait_until_queued(commits, 2)
    lock.release()
    await gate.reached.wait()  # the first caller's commit is writing both
    gives_up.cancel()  # its deadline passed mid-commit
    gate.opened.set()

    assert await stays == 4
    with pytest.raises(asyncio.CancelledError):
        await gives_up
    await tasks.wait()
    assert table.batches == [["gone", "kept"]]


async def test_items_still_waiting_when_the_store_closes_are_told_so(
    table: Table, tasks: BackgroundTasks
) -> None:
    commits: GroupCommit[str, int] = GroupCommit(asyncio.Lock(), table.write, tasks)
    [gate] = table.hold(1)
    first = asyncio.ensure_future(commits.submit("a"))
    await gate.reached.wait()
    waiting = asyncio.ensure_future(commits.submit("b"))
    await wait_until_queued(commits, 1)

    tasks.cancel()  # the store closes mid-commit

    for caller in (first, waiting):
        with pytest.raises(Unavailable, match="closed before the write"):
            await caller

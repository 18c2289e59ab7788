"""The priority gate in front of a model: interactive work first, bounded lines, metrics."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from prometheus_client import REGISTRY

from bruno_core import Unavailable
from bruno_core.queueing import Bounds, Priority, PriorityGate, QueueFull


def sample(name: str, queue: str, priority: str) -> float:
    return REGISTRY.get_sample_value(name, {"queue": queue, "priority": priority}) or 0.0


async def settle() -> None:
    """Let every ready task run up to its next wait."""
    for _ in range(3):
        await asyncio.sleep(0)


async def test_a_freed_slot_goes_to_the_oldest_interactive_waiter_before_any_background_one() -> (
    None
):
    gate = PriorityGate("order", slots=1, max_waiting=Bounds(interactive=8, background=8))
    served: list[str] = []

    async def use(name: str, priority: Priority) -> None:
        async with gate.slot(priority):
            served.append(name)
            await asyncio.sleep(0)

    release = asyncio.Event()

    async def holder() -> None:
        async with gate.slot(Priority.BACKGROUND):
            await release.wait()

    holding = asyncio.create_task(holder())
    await settle()
    arrivals = [
        ("title task", Priority.BACKGROUND),
        ("first chat", Priority.INTERACTIVE),
        ("tag task", Priority.BACKGROUND),
        ("second chat", Priority.INTERACTIVE),
    ]
    waiters = []
    for name, priority in arrivals:
        waiters.append(asyncio.create_task(use(name, priority)))
        await settle()
    assert gate.waiting(Priority.INTERACTIVE) == 2
    assert gate.waiting(Priority.BACKGROUND) == 2
    release.set()
    await asyncio.gather(holding, *waiters)
    assert served == ["first chat", "second chat", "title task", "tag task"]


async def test_a_request_arriving_at_a_full_line_is_refused_at_once_as_unavailable() -> None:
    gate = PriorityGate("full", slots=1, max_waiting=Bounds(interactive=2, background=1))
    release = asyncio.Event()

    async def hold(priority: Priority) -> None:
        async with gate.slot(priority):
            await release.wait()

    tasks = [asyncio.create_task(hold(Priority.INTERACTIVE))]
    await settle()
    tasks += [asyncio.create_task(hold(Priority.INTERACTIVE)) for _ in range(2)]
    tasks.append(asyncio.create_task(hold(Priority.BACKGROUND)))
    await settle()
    assert sample("bruno_queue_depth", "full", "interactive") == 2
    with pytest.raises(QueueFull, match="2 interactive requests waiting") as refused:
        async with gate.slot(Priority.INTERACTIVE):
            pass
    assert isinstance(refused.value, Unavailable)
    assert refused.value.grpc_code is grpc.StatusCode.UNAVAILABLE
    with pytest.raises(QueueFull, match="1 background requests waiting"):
        async with gate.slot(Priority.BACKGROUND):
            pass
    assert sample("bruno_queue_refused_total", "full", "interactive") == 1
    assert sample("bruno_queue_refused_total", "full", "background") == 1
    release.set()
    await asyncio.gather(*tasks)
    assert sample("bruno_queue_depth", "full", "interactive") == 0
    assert sample("bruno_queue_wait_seconds_count", "full", "interactive") == 3


async def test_a_waiter_that_gives_up_leaves_the_line_and_the_slot_goes_on() -> None:
    gate = PriorityGate("cancel", slots=1, max_waiting=Bounds(interactive=1, background=1))
    release = asyncio.Event()
    served: list[str] = []

    async def use(name: str, priority: Priority) -> None:
        async with gate.slot(priority):
            served.append(name)
            await release.wait()

    holding = asyncio.create_task(use("holder", Priority.BACKGROUND))
    await settle()
    gone = asyncio.create_task(use("gone", Priority.INTERACTIVE))
    await settle()
    gone.cancel()
    await settle()
    assert gate.waiting(Priority.INTERACTIVE) == 0  # its place is free for the next one
    after = asyncio.create_task(use("after", Priority.INTERACTIVE))
    await settle()
    release.set()
    await asyncio.gather(holding, after)
    assert served == ["holder", "after"]


async def test_a_slot_handed_to_a_waiter_that_just_gave_up_is_passed_on() -> None:
    gate = PriorityGate("handover", slots=1, max_waiting=Bounds(interactive=2, background=2))
    served: list[str] = []
    release = asyncio.Event()

    async def use(name: str) -> None:
        async with gate.slot(Priority.INTERACTIVE):
            served.append(name)

    async def holder() -> None:
        async with gate.slot(Priority.INTERACTIVE):
            await release.wait()

    holding = asyncio.create_task(holder())
    await settle()
    gone = asyncio.create_task(use("gone"))
    after = asyncio.create_task(use("after"))
    await settle()
    release.set()
    await asyncio.sleep(0)  # the holder leaves and hands its slot to "gone"...
    gone.cancel()  # ...which gives up before it could run
    await asyncio.wait_for(asyncio.gather(holding, after), timeout=30)  # a bound, not a timing
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert served == ["after"]


def test_bounds_and_slots_must_allow_some_work() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Bounds(interactive=0, background=1)
    with pytest.raises(ValueError, match="slots"):
        PriorityGate("none", slots=0, max_waiting=Bounds(interactive=1, background=1))
